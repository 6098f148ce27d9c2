"""The labelled criteria (tests/trials/labels/) against what the parser reads.

Shared by the quality tests and ``bench/criteria_quality.py``: loading labels and records,
pairing labelled with parsed criteria by their text, and comparing constraints with the
tolerance a reader would allow (numbers within 2 %, ``>`` and ``>=`` alike).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trials.ctgov.mapping import map_study
from trials.eligibility.classify import TrialText
from trials.eligibility.extract import stage_range
from trials.eligibility.parser import Criterion, parse_eligibility

ROOT = Path(__file__).resolve().parents[2]
LABELS = Path(__file__).resolve().parent / "labels"
CTGOV = ROOT / "trials" / "data" / "ctgov"


def load_labels() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(LABELS.glob("NCT*.json"))}


def record(nct_id: str, source: str) -> dict[str, Any]:
    return json.loads((CTGOV / source / f"{nct_id}.json").read_text())


def parse_record(study: dict[str, Any]) -> list[Criterion]:
    mapped = map_study(study)
    return parse_eligibility(
        mapped.eligibility_criteria,
        minimum_age_years=float(mapped.minimum_age.years) if mapped.minimum_age else None,
        maximum_age_years=float(mapped.maximum_age.years) if mapped.maximum_age else None,
        sex=mapped.sex,
    ).criteria


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def pair(
    labelled: list[dict[str, Any]], parsed: list[Criterion]
) -> list[tuple[dict[str, Any], Criterion | None]]:
    """Each labelled criterion with the parsed one of the same text (None when not found)."""
    candidates = [criterion for criterion in parsed if criterion.origin == "text"]
    by_key: dict[str, Criterion] = {}
    for criterion in candidates:
        by_key.setdefault(_key(criterion.text), criterion)
    pairs = []
    for label in labelled:
        key = _key(label["text"])
        match = by_key.get(key)
        if match is None:
            match = next(
                (
                    p
                    for p in candidates
                    if key
                    and (key in _key(p.text) or _key(p.text) in key)
                    and min(len(key), len(_key(p.text))) > 0.6 * max(len(key), len(_key(p.text)))
                ),
                None,
            )
        pairs.append((label, match))
    return pairs


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 0.02 * max(abs(float(a)), abs(float(b)), 1e-9)


def _side(op: str | None) -> str | None:
    return None if op is None else ("min" if op.startswith(">") else "max")


def _stage(constraint: dict[str, Any]) -> tuple[Any, ...]:
    """A stage constraint in canonical form: "T3-T4" and "T3 or higher" are the same."""
    values = constraint.get("any_of") or []
    if len(values) == 1:
        low = high = values[0]
    elif values:
        return (constraint["category"], tuple(sorted(values)))
    else:
        low, high = constraint.get("min"), constraint.get("max")
    canonical = stage_range(constraint["category"], low, high).as_dict()
    return (
        canonical["category"],
        canonical.get("min"),
        canonical.get("max"),
        tuple(canonical.get("any_of", ())),
    )


def similar(label: dict[str, Any], parsed: dict[str, Any]) -> bool:
    """Do a labelled and a parsed constraint say the same thing?"""
    kind = label["type"]
    if kind != parsed["type"]:
        return False
    if kind == "age":
        return _close(label.get("min"), parsed.get("min")) and _close(
            label.get("max"), parsed.get("max")
        )
    if kind in ("sex",):
        return label["sex"] == parsed["sex"]
    if kind == "ecog":
        return set(label["allowed"]) == set(parsed["allowed"])
    if kind == "karnofsky":
        return _close(label["min"], parsed["min"])
    if kind == "stage":
        return _stage(label) == _stage(parsed)
    if kind in ("primary_site", "histology"):
        return bool(set(label.get("any_of", [])) & set(parsed.get("any_of", [])))
    if kind == "metastasis":
        return label["site"] == parsed["site"] and label.get("present", True) == parsed.get(
            "present", True
        )
    if kind == "resectable":
        return label.get("value", True) == parsed.get("value", True)
    if kind == "lab":
        same = label["analyte"] == parsed["analyte"] and _side(label["op"]) == _side(parsed["op"])
        threshold = _close(label.get("value"), parsed.get("value")) and _close(
            label.get("uln"), parsed.get("uln")
        )
        return same and threshold and label.get("if") == parsed.get("if")
    if kind == "prior_therapy":
        return label.get("present", True) == parsed.get("present", True) and bool(
            set(label.get("classes", [])) & set(parsed.get("classes", []))
        )
    if kind == "biomarker":
        if label.get("marker") != parsed.get("marker"):
            return False
        if label.get("any_of"):
            return set(label["any_of"]) == set(parsed.get("any_of", []))
        return _side(label.get("op")) == _side(parsed.get("op")) and _close(
            label.get("value"), parsed.get("value")
        )
    if kind == "comorbidity":
        return label["kind"] == parsed["kind"] and label.get("present", True) == parsed.get(
            "present", True
        )
    if kind == "medication":
        return label["category"] == parsed["category"] and label.get("present", True) == parsed.get(
            "present", True
        )
    if kind == "pregnancy":
        return label.get("present", True) == parsed.get("present", True)
    if kind == "surgery":
        return label["status"] == parsed["status"] and label.get("present", True) == parsed.get(
            "present", True
        )
    if kind in ("any_of", "all_of"):
        # Item by item, in any order.
        items, found = label.get("items", []), list(parsed.get("items", []))
        if len(items) != len(found):
            return False
        for item in items:
            match = next((x for x in found if similar(item, x)), None)
            if match is None:
                return False
            found.remove(match)
        return True
    return False


@dataclass
class Scores:
    labelled_criteria: int = 0
    found_criteria: int = 0
    category_right: int = 0
    labelled_constraints: int = 0
    parsed_constraints: int = 0
    matching_constraints: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return (
            self.matching_constraints / self.labelled_constraints
            if self.labelled_constraints
            else 1.0
        )

    @property
    def precision(self) -> float:
        return (
            self.matching_constraints / self.parsed_constraints if self.parsed_constraints else 1.0
        )

    @property
    def category_accuracy(self) -> float:
        return self.category_right / self.found_criteria if self.found_criteria else 1.0

    @property
    def segmentation_recall(self) -> float:
        return self.found_criteria / self.labelled_criteria if self.labelled_criteria else 1.0


def score(labels: dict[str, dict[str, Any]]) -> Scores:
    scores = Scores()
    for nct_id, labelled in labels.items():
        parsed = parse_record(record(nct_id, labelled["source"]))
        for label, criterion in pair(labelled["criteria"], parsed):
            scores.labelled_criteria += 1
            scores.labelled_constraints += len(label["constraints"])
            if criterion is None:
                scores.misses.append(f"{nct_id}: not found: {label['text'][:80]}")
                continue
            scores.found_criteria += 1
            if criterion.category == label["category"]:
                scores.category_right += 1
            # A quality the text leaves undefined ("adequate organ function") is read as the
            # floors no definition could go below; those are not limits read from the text,
            # so such a reading is scored as unread.
            undefined = any(gap.startswith("undefined: ") for gap in criterion.gaps)
            found = [] if undefined else [x.as_dict() for x in criterion.constraints]
            scores.parsed_constraints += len(found)
            unmatched = list(found)
            for wanted in label["constraints"]:
                hit = next((f for f in unmatched if similar(wanted, f)), None)
                if hit is None:
                    scores.misses.append(f"{nct_id}: missed {wanted} in: {label['text'][:70]}")
                    continue
                unmatched.remove(hit)
                scores.matching_constraints += 1
            for extra in unmatched:
                scores.misses.append(f"{nct_id}: extra {extra} in: {label['text'][:70]}")
    return scores


def real_records() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every real record with eligibility text, once: v2, v2-partial, the corpus and bulk."""
    import gzip

    seen: set[str] = set()

    def fresh(study: dict[str, Any]) -> bool:
        protocol = study.get("protocolSection", {})
        nct_id = protocol.get("identificationModule", {}).get("nctId", "")
        if nct_id in seen or not protocol.get("eligibilityModule", {}).get("eligibilityCriteria"):
            return False
        seen.add(nct_id)
        return True

    for folder in ("v2", "v2-partial"):
        for path in sorted((CTGOV / folder).glob("*.json")):
            study = json.loads(path.read_text())
            if fresh(study):
                yield folder, study
    with gzip.open(CTGOV / "corpus" / "criteria-corpus.json.gz") as stream:
        for study in json.load(stream):
            if fresh(study):
                yield "corpus", study
    for path in sorted((CTGOV / "bulk").glob("*.json.gz")):
        with gzip.open(path) as stream:
            page = json.load(stream)
        for study in page if isinstance(page, list) else page.get("studies", []):
            if fresh(study):
                yield "bulk", study


def trial_text(study: dict[str, Any]) -> TrialText:
    mapped = map_study(study)
    return TrialText(
        brief_title=mapped.brief_title,
        official_title=mapped.official_title,
        acronym=mapped.acronym,
        conditions=tuple(mapped.conditions),
        condition_mesh_terms=tuple(mapped.condition_mesh_terms),
        keywords=tuple(mapped.keywords),
        brief_summary=mapped.brief_summary,
        detailed_description=mapped.detailed_description,
        interventions=tuple(mapped.interventions),
        arm_groups=tuple(mapped.arm_groups),
        intervention_mesh_terms=tuple(mapped.intervention_mesh_terms),
        criteria=tuple(parse_record(study)),
    )


CORPUS_CLASSIFICATION = LABELS / "corpus-classification.json"
CLASSIFICATION_PARTS = ("gastric", "immunotherapy", "preoperative", "gastric_preop_immunotherapy")


def corpus_classification_labels() -> dict[str, dict[str, Any]]:
    """Classification labels of corpus records (title and eligibility only), by NCT id."""
    records: dict[str, dict[str, Any]] = json.loads(CORPUS_CLASSIFICATION.read_text())["records"]
    return records


def corpus_records(nct_ids: set[str]) -> dict[str, dict[str, Any]]:
    import gzip

    with gzip.open(CTGOV / "corpus" / "criteria-corpus.json.gz") as stream:
        studies = json.load(stream)
    return {
        study["protocolSection"]["identificationModule"]["nctId"]: study
        for study in studies
        if study["protocolSection"]["identificationModule"]["nctId"] in nct_ids
    }
