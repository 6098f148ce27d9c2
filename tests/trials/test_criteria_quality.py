"""The parser measured against the labelled real records (tests/trials/labels/).

Floors, not timings: they stop a change from quietly reading worse than the engine does today
(figures in README.md, printed by bench/criteria_quality.py).
"""

import re
from typing import Any

import pytest

from tests.trials.criteria_labels import (
    CLASSIFICATION_PARTS,
    corpus_classification_labels,
    corpus_records,
    load_labels,
    parse_record,
    record,
    score,
    trial_text,
)
from trials.eligibility.classify import classify
from trials.eligibility.constraints import constraint_from_dict
from trials.eligibility.extract import CATEGORIES

LABELS = load_labels()
GASTRIC = {nct: label for nct, label in LABELS.items() if label["classification"]["gastric"]}


def test_the_labelled_set_covers_every_gastric_record() -> None:
    assert len(LABELS) >= 15
    assert len(GASTRIC) >= 35


@pytest.mark.parametrize("nct_id", sorted(LABELS))
def test_labels_are_well_formed(nct_id: str) -> None:
    label = LABELS[nct_id]
    text = record(nct_id, label["source"])["protocolSection"]["eligibilityModule"][
        "eligibilityCriteria"
    ]
    for criterion in label["criteria"]:
        assert criterion["text"] in text
        assert criterion["category"] in CATEGORIES
        for constraint in criterion["constraints"]:
            constraint_from_dict(constraint)


@pytest.mark.parametrize("nct_id", sorted(LABELS))
def test_every_labelled_record_is_classified_as_labelled(nct_id: str) -> None:
    expected = LABELS[nct_id]["classification"]

    found = classify(trial_text(record(nct_id, LABELS[nct_id]["source"])))

    assert found.gastric_preop_immunotherapy == expected["gastric_preop_immunotherapy"], [
        e.as_dict() for e in found.evidence
    ]
    assert found.gastric == expected["gastric"]
    assert found.evidence


def test_most_criteria_of_gastric_records_are_categorised() -> None:
    total = categorised = 0
    for nct_id, label in GASTRIC.items():
        criteria = [c for c in parse_record(record(nct_id, label["source"])) if c.origin == "text"]
        total += len(criteria)
        categorised += sum(c.category != "other" for c in criteria)

    assert categorised / total >= 0.85


def test_constraints_are_read_as_labelled() -> None:
    scores = score(LABELS)

    assert scores.segmentation_recall >= 0.93
    assert scores.category_accuracy >= 0.84
    assert scores.precision >= 0.84
    assert scores.recall >= 0.76


def test_every_real_record_parses_and_keeps_its_text() -> None:
    from tests.trials.criteria_labels import real_records

    for _, study in real_records():
        text = study["protocolSection"]["eligibilityModule"].get("eligibilityCriteria") or ""
        for criterion in parse_record(study):
            if criterion.origin == "text":
                assert text[criterion.start : criterion.end] == criterion.text


def _flatten(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value))


def test_corpus_records_are_flagged_as_labelled_and_each_question_mostly_right() -> None:
    """Corpus records carry only a title and eligibility: the flag must still be right."""
    labels = corpus_classification_labels()
    studies = corpus_records(set(labels))
    right = dict.fromkeys(CLASSIFICATION_PARTS, 0)
    for nct_id, expected in labels.items():
        found = classify(trial_text(studies[nct_id]))
        assert found.gastric_preop_immunotherapy == expected["gastric_preop_immunotherapy"], nct_id
        for part in CLASSIFICATION_PARTS:
            right[part] += getattr(found, part) == expected[part]

    assert len(labels) >= 80
    assert right["gastric"] / len(labels) >= 0.97
    assert right["immunotherapy"] / len(labels) >= 0.95
    assert right["preoperative"] / len(labels) >= 0.94
