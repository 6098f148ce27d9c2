"""How well the criteria engine reads real eligibility text, printed as numbers.

    .venv/bin/python bench/criteria_quality.py [--misses]

- share of criteria categorised (not ``other``) over every real record bundled in
  ``trials/data/ctgov`` (v2, v2-partial, the corpus, bulk samples; each trial once), over the
  gastric records, and over the labelled set;
- against the labelled set (``tests/trials/labels/``): segmentation recall, category accuracy,
  constraint precision and recall;
- classification accuracy of the gastric preoperative-immunotherapy flag and of each of its
  three parts, over every labelled record and over the gastric ones.

``--misses`` lists each labelled constraint missed or read extra, to see what to work on.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.trials.criteria_labels import (
    CLASSIFICATION_PARTS,
    corpus_classification_labels,
    corpus_records,
    load_labels,
    parse_record,
    real_records,
    record,
    score,
    trial_text,
)
from trials.eligibility.classify import classify


def share(counts: Counter[str]) -> str:
    total = sum(counts.values())
    categorised = total - counts["other"]
    return f"{categorised / total:.3f} ({categorised}/{total} criteria)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="list each miss and extra")
    options = parser.parse_args()

    labels = load_labels()
    gastric_ids = {nct for nct, label in labels.items() if label["classification"]["gastric"]}
    corpus_gastric = {
        nct for nct, label in corpus_classification_labels().items() if label["gastric"]
    }

    everything: Counter[str] = Counter()
    gastric: Counter[str] = Counter()
    every_gastric: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    trials = 0
    for _, study in real_records():
        trials += 1
        nct_id = study["protocolSection"]["identificationModule"]["nctId"]
        categories = Counter(c.category for c in parse_record(study) if c.origin == "text")
        everything += categories
        if nct_id in gastric_ids:
            gastric += categories
        if nct_id in gastric_ids | corpus_gastric:
            every_gastric += categories
        if nct_id in labels:
            labelled += categories

    print(f"real records read: {trials}")
    print(f"categorised, all real records: {share(everything)}")
    print(f"categorised, gastric full records ({len(gastric_ids)}): {share(gastric)}")
    print(
        f"categorised, every gastric record incl. corpus "
        f"({len(gastric_ids | corpus_gastric)}): {share(every_gastric)}"
    )
    print(f"categorised, labelled records ({len(labels)}): {share(labelled)}")
    top = ", ".join(f"{name} {count}" for name, count in everything.most_common())
    print(f"categories, all real records: {top}")

    scores = score(labels)
    print(f"labelled criteria: {scores.labelled_criteria}")
    print(f"segmentation recall: {scores.segmentation_recall:.3f}")
    print(f"category accuracy: {scores.category_accuracy:.3f}")
    print(
        f"constraint precision: {scores.precision:.3f} "
        f"({scores.matching_constraints}/{scores.parsed_constraints})"
    )
    print(
        f"constraint recall: {scores.recall:.3f} "
        f"({scores.matching_constraints}/{scores.labelled_constraints})"
    )

    parts = CLASSIFICATION_PARTS
    right: Counter[str] = Counter()
    right_gastric: Counter[str] = Counter()
    wrong: list[str] = []
    for nct_id, label in labels.items():
        found = classify(trial_text(record(nct_id, label["source"])))
        for part in parts:
            if getattr(found, part) == label["classification"][part]:
                right[part] += 1
                right_gastric[part] += nct_id in gastric_ids
            elif part == "gastric_preop_immunotherapy":
                wrong.append(nct_id)
    for part in parts:
        print(
            f"classification accuracy, {part}: {right[part] / len(labels):.3f} "
            f"({right[part]}/{len(labels)}); gastric records "
            f"{right_gastric[part]}/{len(gastric_ids)}"
        )
    print(f"misclassified: {', '.join(wrong) or 'none'}")

    corpus_labels = corpus_classification_labels()
    studies = corpus_records(set(corpus_labels))
    right = Counter()
    disagreements: list[str] = []
    for nct_id, expected in sorted(corpus_labels.items()):
        found = classify(trial_text(studies[nct_id]))
        for part in parts:
            if getattr(found, part) == expected[part]:
                right[part] += 1
            else:
                disagreements.append(f"{nct_id} {part}: labelled {expected[part]}")
    positives = sum(label["gastric_preop_immunotherapy"] for label in corpus_labels.values())
    gastric_count = sum(label["gastric"] for label in corpus_labels.values())
    print(
        f"corpus records labelled for classification (title and eligibility only): "
        f"{len(corpus_labels)} ({gastric_count} gastric, {positives} flagged)"
    )
    for part in parts:
        print(
            f"classification accuracy (corpus), {part}: "
            f"{right[part] / len(corpus_labels):.3f} ({right[part]}/{len(corpus_labels)})"
        )
    if options.misses:
        print("\n".join(disagreements))

    if options.misses:
        print("\n".join(scores.misses))


if __name__ == "__main__":
    main()
