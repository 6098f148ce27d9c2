"""Codes as current senders write them: mCODE STU2+ staging in SNOMED CT with AJCC values,
stage groups in AJCC's own spelling and on ``Condition.stage``, metastases in SNOMED CT and as
mCODE's secondary cancer condition, and HER2 IHC scores only from score-shaped answers.

The shapes are those of the shared external bundles (CodeX test patients, mCODE IG examples);
``test_fhir_external.py`` measures the whole import on the bundles themselves.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from patients.fhir import read_bundle, staging_value
from tests.patients.conftest import example

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def with_resources(*resources: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(example("EX1"))
    patient = next(e for e in document["entry"] if e["resource"]["resourceType"] == "Patient")
    document["entry"] = [patient] + [
        {"fullUrl": f"urn:uuid:r{index}", "resource": resource}
        for index, resource in enumerate(resources)
    ]
    return document


def observation(system: str, code: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/ex1"},
        "valueCodeableConcept": value,
        **extra,
    }


def facts(document: dict[str, Any], model: str) -> list[dict[str, Any]]:
    profile = read_bundle(document, origin="x.json")
    return [fact.values for fact in profile.facts if fact.model == model]


def problems(document: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in read_bundle(document, origin="x.json").problems]


@pytest.mark.parametrize(
    ("category_code", "value", "expected"),
    [
        (
            "399504009",
            "American Joint Committee on Cancer cT3 (qualifier value)",
            ("clinical", "T", "T3"),
        ),
        ("399534004", "American Joint Committee on Cancer cN3", ("clinical", "N", "N3")),
        ("399387003", "AJCC cM0", ("clinical", "M", "M0")),
        (
            "384625004",
            "American Joint Committee on Cancer pT4a (qualifier value)",
            ("pathological", "T", "T4a"),
        ),
        ("371494008", "pN1", ("pathological", "N", "N1")),
        ("399537006", "3C", ("clinical", "stage", "IIIC")),
        ("399588009", "Stage 2B", ("pathological", "stage", "IIB")),
    ],
)
def test_snomed_coded_staging_is_read(
    category_code: str, value: str, expected: tuple[str, str, str]
) -> None:
    concept = {"coding": [{"system": SNOMED, "code": "1228938002", "display": value}]}
    (stage,) = facts(
        with_resources(observation(SNOMED, category_code, concept)), "StageObservation"
    )
    assert (stage["context"], stage["category"], stage["value"]) == expected


@pytest.mark.parametrize(
    ("spelling", "group"),
    [("4", "IV"), ("c3A", "IIIA"), ("pIIIA", "IIIA"), ("Stage 2B", "IIB"), ("IIIC", "IIIC")],
)
def test_stage_groups_in_ajcc_spellings(spelling: str, group: str) -> None:
    assert staging_value({"coding": [{"code": spelling}]}, "stage") == group


@pytest.mark.parametrize("spelling", ["5", "3D", "T3", "261638004", "stage", ""])
def test_what_is_no_stage_group_stays_unread(spelling: str) -> None:
    assert staging_value({"coding": [{"code": spelling}], "text": spelling}, "stage") is None


def test_a_snomed_code_never_becomes_a_category_by_its_digits() -> None:
    concept = {"coding": [{"system": SNOMED, "code": "1228938002"}]}
    assert staging_value(concept, "T") is None


def primary(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"
            ]
        },
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": "363349007"}], "text": "Gastric cancer"},
        "subject": {"reference": "Patient/ex1"},
        **extra,
    }


def test_the_primary_cancers_stage_summary_is_read_with_its_type() -> None:
    condition = primary(
        stage=[
            {
                "summary": {"coding": [{"code": "3C"}]},
                "type": {"coding": [{"system": SNOMED, "code": "399588009"}]},
            }
        ]
    )
    (stage,) = facts(with_resources(condition), "StageObservation")
    assert (stage["context"], stage["category"], stage["value"]) == (
        "pathological",
        "stage",
        "IIIC",
    )


def test_a_stage_summary_without_type_is_reported_not_guessed_clinical() -> None:
    document = with_resources(primary(stage=[{"summary": {"text": "Stage IIIA"}}]))
    assert facts(document, "StageObservation") == []
    assert any("without a type" in problem for problem in problems(document))


def test_the_snomed_staging_qualifiers_say_the_context() -> None:
    condition = primary(
        stage=[
            {
                "summary": {"text": "Stage 3A"},
                "type": {"coding": [{"system": SNOMED, "code": "261023001"}]},
            }
        ]
    )
    (stage,) = facts(with_resources(condition), "StageObservation")
    assert (stage["context"], stage["value"]) == ("pathological", "IIIA")


def secondary(code: str, display: str, body_site: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "meta": {
            "profile": [
                "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-secondary-cancer-condition"
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "subject": {"reference": "Patient/ex1"},
    }
    if body_site:
        resource["bodySite"] = [{"coding": [{"system": SNOMED, "code": body_site}]}]
    return resource


@pytest.mark.parametrize(
    ("resource", "location"),
    [
        (secondary("94381002", "Secondary malignant neoplasm of liver (disorder)"), "liver"),
        (secondary("94222008", "Secondary malignant neoplasm of bone (disorder)"), "bone"),
        (secondary("94225005", "Secondary malignant neoplasm of brain"), "brain"),
        (secondary("94391008", "Metastatic malignant neoplasm to lung (disorder)"), "lung"),
        (
            secondary("128462008", "Secondary malignant neoplastic disease", "8935007"),
            "leptomeningeal",
        ),
        (secondary("128462008", "Secondary malignant neoplasm of peritoneum"), "peritoneum"),
    ],
)
def test_metastases_in_snomed_and_as_secondary_cancers(
    resource: dict[str, Any], location: str
) -> None:
    (metastasis,) = facts(with_resources(resource), "Metastasis")
    assert metastasis["location"] == location


def test_a_lymph_node_metastasis_is_reported_not_guessed_distant() -> None:
    document = with_resources(
        secondary("94181007", "Secondary malignant neoplasm of axillary lymph nodes (disorder)")
    )
    assert facts(document, "Metastasis") == []
    assert any("a metastasis at a site" in problem for problem in problems(document))


NEGATIVE = {"coding": [{"system": SNOMED, "code": "260385009", "display": "Negative"}]}


@pytest.mark.parametrize(
    ("value", "reading"),
    [
        (NEGATIVE, ("her2_status", "negative")),  # was read as IHC "2+" from the code's digits
        (
            {"coding": [{"system": SNOMED, "code": "10828004", "display": "Positive"}]},
            ("her2_status", "positive"),
        ),
        ({"text": "2+ (equivocal)"}, ("her2_ihc", "2+")),
        ({"text": "Score 3+"}, ("her2_ihc", "3+")),
        ({"text": "0"}, ("her2_ihc", "0")),
        ({"text": "IHC 1+"}, ("her2_ihc", "1+")),
    ],
)
def test_a_her2_ihc_score_comes_only_from_a_score(
    value: dict[str, Any], reading: tuple[str, str]
) -> None:
    (biomarker,) = facts(with_resources(observation(LOINC, "18474-7", value)), "Biomarker")
    assert (biomarker["marker"], biomarker["value"]) == reading


def test_kinds_never_read_are_counted_once_each_after_the_clinical_notes() -> None:
    """A Synthea bundle holds thousands of claims and encounters: one line per kind, after
    the notes on what was read, and none of them validated (a broken claim costs nothing)."""
    claim = {"resourceType": "Claim", "status": "active", "use": "claim"}
    broken_claim = {"resourceType": "Claim", "status": 42}
    encounter = {"resourceType": "Encounter", "status": "finished"}
    unread = observation(LOINC, "0000-0", {"text": "something"})
    document = with_resources(claim, claim, broken_claim, encounter, encounter, unread)
    notes = problems(document)
    assert notes[-2:] == [
        "x.json: 3 Claim resources not used: the import reads Patient, Condition, Observation, "
        "MedicationStatement, MedicationAdministration, MedicationRequest, Procedure, "
        "ServiceRequest only",
        "x.json: 2 Encounter resources not used: the import reads Patient, Condition, "
        "Observation, MedicationStatement, MedicationAdministration, MedicationRequest, "
        "Procedure, ServiceRequest only",
    ]
    assert "observation not used" in notes[0]
    assert not any("not valid FHIR" in note for note in notes)


@pytest.mark.parametrize("text", ["0-1+", "less than 1+", "1+ to 2+", "score 0, ISH 2+ copies"])
def test_a_her2_ihc_range_or_mixed_text_is_no_score(text: str) -> None:
    document = with_resources(observation(LOINC, "18474-7", {"text": text}))
    assert facts(document, "Biomarker") == []
    assert any("not understood" in problem for problem in problems(document))


@pytest.mark.parametrize(
    "display",
    [
        "Non-metastatic lung cancer",
        "No evidence of metastasis to liver",
        "Brain metastasis from lung adenocarcinoma",
        "Metastatic non-small cell lung cancer",
        "Metastasis to bone marrow",
    ],
)
def test_words_that_name_no_metastatic_site_store_none(display: str) -> None:
    resource = {
        "resourceType": "Condition",
        "code": {"text": display},
        "subject": {"reference": "Patient/ex1"},
    }
    assert facts(with_resources(resource), "Metastasis") == []


def test_a_refuted_metastasis_is_left_out() -> None:
    refuted = secondary("94381002", "Secondary malignant neoplasm of liver (disorder)")
    refuted["verificationStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "refuted",
            }
        ]
    }
    document = with_resources(refuted)
    assert facts(document, "Metastasis") == []
    assert any("status refuted" in problem for problem in problems(document))
