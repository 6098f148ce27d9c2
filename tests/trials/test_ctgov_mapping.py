"""A real API v2 record becomes the right plain data; absence is normal, wrong types are not."""

import copy
import datetime
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from trials.ctgov.mapping import Age, MalformedRecord, content_hash, map_study, parse_age

DATA = Path(__file__).resolve().parents[2] / "trials" / "data" / "ctgov"


def recorded(nct_id: str, folder: str = "v2") -> dict[str, Any]:
    return json.loads((DATA / folder / f"{nct_id}.json").read_text())


def test_maps_a_full_record() -> None:
    record = map_study(recorded("NCT06008288"))

    assert record.nct_id == "NCT06008288"
    assert record.overall_status == "RECRUITING"
    assert record.phases == ["PHASE2"]
    assert record.study_type == "INTERVENTIONAL"
    assert "Pancreatic Cancer" in record.conditions
    assert record.condition_mesh_terms == ["Pancreatic Neoplasms"]
    assert record.interventions[0]["name"] == "JAB-21822"
    assert record.interventions[0]["other_names"] == ["Glecirasib"]
    assert record.arm_groups[0]["intervention_names"] == ["Drug: JAB-21822"]
    assert record.lead_sponsor == "Allist Pharmaceuticals, Inc."
    assert record.start_date == "2023-10-27"
    assert record.last_update_posted == datetime.date(2025, 8, 7)
    assert record.minimum_age == Age(Decimal(18), "years")
    first_site = record.sites[0]
    assert first_site.facility == "Anhui Provincial Cancer Hospital"
    assert first_site.status == "RECRUITING"
    assert (first_site.latitude, first_site.longitude) == (31.86389, 117.28083)


def test_maps_a_gastric_perioperative_record() -> None:
    record = map_study(recorded("NCT04592913"))

    assert record.brief_title.startswith("Assessing Durvalumab and FLOT")
    assert record.conditions == ["Gastrointestinal Neoplasms", "Esophagogastric Junction"]
    assert record.eligibility_criteria.startswith("Key Inclusion Criteria:")
    assert record.maximum_age == Age(Decimal(200), "years")
    assert record.sex == "ALL"
    assert record.healthy_volunteers is False
    assert [site.city for site in record.sites] == ["Duarte", "Atlanta", "New York", "Seattle"]
    assert record.sites[0].latitude is None


def test_missing_modules_are_empty_not_errors() -> None:
    record = map_study({"protocolSection": {"identificationModule": {"nctId": "NCT01234567"}}})

    assert record.nct_id == "NCT01234567"
    assert record.conditions == []
    assert record.sites == []
    assert record.eligibility_criteria == ""
    assert record.minimum_age is None
    assert record.last_update_posted is None
    assert record.healthy_volunteers is None


@pytest.mark.parametrize(
    ("date", "kept"),
    [("2023", "2023"), ("2023-04", "2023-04"), ("2023-04-05", "2023-04-05"), ("April", "")],
)
def test_partial_dates_are_valid(date: str, kept: str) -> None:
    study = recorded("NCT06008288")
    study["protocolSection"]["statusModule"]["startDateStruct"]["date"] = date

    assert map_study(study).start_date == kept


@pytest.mark.parametrize(
    ("text", "age", "years"),
    [
        ("18 Years", Age(Decimal(18), "years"), Decimal("18.000")),
        ("6 Months", Age(Decimal(6), "months"), Decimal("0.500")),
        ("1 Year", Age(Decimal(1), "years"), Decimal("1.000")),
        ("28 Days", Age(Decimal(28), "days"), Decimal("0.077")),
        ("N/A", None, None),
        ("", None, None),
    ],
)
def test_ages_parse_to_number_and_unit(text: str, age: Age | None, years: Decimal | None) -> None:
    parsed = parse_age(text)

    assert parsed == age
    assert (parsed.years if parsed else None) == years


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ([], "must be a JSON object"),
        ({"hasResults": False}, "no protocolSection"),
        ({"protocolSection": {"identificationModule": {}}}, "no NCT id"),
        ({"protocolSection": {"identificationModule": {"nctId": "12345"}}}, "no valid NCT id"),
        (
            {
                "protocolSection": {
                    "identificationModule": {"nctId": "NCT01234567"},
                    "conditionsModule": {"conditions": "Gastric Cancer"},
                }
            },
            "conditionsModule.conditions should be a list of text",
        ),
        (
            {
                "protocolSection": {
                    "identificationModule": {"nctId": "NCT01234567", "briefTitle": 42},
                }
            },
            "identificationModule.briefTitle should be text",
        ),
        (
            {
                "protocolSection": {
                    "identificationModule": {"nctId": "NCT01234567"},
                    "eligibilityModule": ["not", "an", "object"],
                }
            },
            "eligibilityModule should be an object",
        ),
    ],
)
def test_malformed_records_say_why(study: Any, message: str) -> None:
    with pytest.raises(MalformedRecord, match=message):
        map_study(study)


def test_content_hash_ignores_the_daily_version_stamp_only() -> None:
    study = recorded("NCT06008288")
    restamped = copy.deepcopy(study)
    restamped["derivedSection"]["miscInfoModule"]["versionHolder"] = "2099-01-01"
    edited = copy.deepcopy(study)
    edited["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"

    assert content_hash(restamped) == content_hash(study)
    assert content_hash(edited) != content_hash(study)
    assert study["derivedSection"]["miscInfoModule"]["versionHolder"] != "2099-01-01"
