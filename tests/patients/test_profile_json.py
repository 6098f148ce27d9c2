"""The project's profile JSON format: documented by a JSON Schema, exported and imported."""

import json
from io import StringIO
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.core.management import CommandError, call_command

from patients import models
from patients.fhir import read_bundle
from patients.profile_json import ProfileFormatError, profile_schema, read_profile_json
from patients.services import patient_upsert
from tests.patients.conftest import EXAMPLES, example

SCHEMA_FILE = (
    Path(__file__).resolve().parents[2] / "patients" / "schema" / "patient-profile.schema.json"
)
pytestmark = pytest.mark.django_db


def export(*args: str) -> str:
    out = StringIO()
    call_command("export_patients", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def examples() -> None:
    for name in ("EX1", "EX2", "EX3"):
        patient_upsert(read_bundle(example(name), origin=f"{name}.json"), source="fhir")


def test_the_schema_in_the_repository_is_the_one_the_models_give() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == profile_schema()
    jsonschema.Draft202012Validator.check_schema(profile_schema())


@pytest.mark.usefixtures("examples")
def test_exported_documents_follow_the_schema_and_carry_candidacy(
    expectations: dict[str, Any],
) -> None:
    documents = json.loads(export())

    validator = jsonschema.Draft202012Validator(profile_schema())
    for document in documents:
        validator.validate(document)
    by_id = {document["external_id"]: document for document in documents}
    assert set(by_id) == {"EX1", "EX2", "EX3"}
    for name, expected in expectations["patients"].items():
        assert by_id[name]["surgical_candidate"] is expected["surgical_candidate"]
        assert by_id[name]["surgical_candidate_reason"]
    ex1 = by_id["EX1"]
    assert ex1["age"] == 64
    assert ex1["sex"] == "female"
    assert ex1["derived"]["creatinine_clearance"]["value"] == pytest.approx(69.8, abs=0.1)
    assert "Cockcroft-Gault" in ex1["derived"]["creatinine_clearance"]["explanation"]


@pytest.mark.usefixtures("examples")
def test_export_is_recorded_as_access_to_each_patient() -> None:
    from auditlog.models import LogEntry

    export("--format", "csv")

    accesses = LogEntry.objects.filter(action=LogEntry.Action.ACCESS)
    assert accesses.count() == 3
    assert {entry.additional_data["purpose"] for entry in accesses} == {"export_patients command"}


@pytest.mark.usefixtures("examples")
def test_csv_export_has_a_line_per_patient() -> None:
    lines = export("--format", "csv").strip().splitlines()

    assert lines[0].startswith("external_id,site,age,sex,primary_site,histology")
    assert len(lines) == 4
    assert "EX2,default,69,male,gej,adenocarcinoma,T4a,N1,M1,IVB,peritoneum" in lines[2]


@pytest.mark.usefixtures("examples")
def test_an_exported_profile_imports_back_to_the_same_facts(tmp_path: Path) -> None:
    models.Site.objects.create(code="other", name="Other hospital")
    document = next(d for d in json.loads(export()) if d["external_id"] == "EX1")
    document["site"] = "other"
    path = tmp_path / "ex1.json"
    path.write_text(json.dumps(document))

    call_command("import_patients", str(path), stdout=StringIO(), stderr=StringIO())

    copy = models.Patient.objects.get(site__code="other")
    original = models.Patient.objects.get(site__code="default", external_id="EX1")
    for relation in ("stages", "labs", "biomarkers", "surgeries", "performance"):
        fields: tuple[str, ...] = ("observed_on",)
        if relation == "labs":
            fields += ("analyte", "value", "unit", "original_value", "original_unit", "uln")
        mine = sorted(getattr(copy, relation).values_list(*fields))
        theirs = sorted(getattr(original, relation).values_list(*fields))
        assert mine == theirs, relation
    assert copy.primary_cancer.histology == original.primary_cancer.histology
    assert {f.source for f in copy.labs.all()} == {models.Source.JSON}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "'external_id' is a required property"),
        ({"external_id": ""}, "external_id: '' should be non-empty"),
        ({"external_id": "A", "sex": "unknown"}, "sex: 'unknown' is not one of"),
        (
            {"external_id": "A", "birth_date": "1960-02-30"},
            "birth_date: '1960-02-30' is not a 'date'",
        ),
        (
            {"external_id": "A", "labs": [{"analyte": "anc"}]},
            "labs/0: 'original_value' is a required",
        ),
        ({"external_id": "A", "color": "blue"}, "Additional properties are not allowed"),
    ],
)
def test_invalid_documents_say_where_and_why(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileFormatError) as error:
        read_profile_json(document, origin="x.json")

    assert message in str(error.value)


def test_bad_facts_in_a_valid_document_are_reported_and_left_out() -> None:
    document = {
        "external_id": "J1",
        "performance_status": [{"scale": "ecog", "value": 9}],
        "labs": [
            {"analyte": "haemoglobin", "original_value": 95, "original_unit": "g/L"},
            {"analyte": "anc", "original_value": 2.0, "original_unit": "mg/dL"},
        ],
        "staging": [{"context": "clinical", "category": "T", "value": "T7"}],
    }

    result = patient_upsert(read_profile_json(document, origin="j1.json"), source="json")

    messages = " | ".join(str(problem) for problem in result.problems)
    assert "ECOG is a score from 0 to 5" in messages
    assert 'Unit "mg/dL" cannot be used for absolute neutrophil count' in messages
    assert "'T7' is not a T category of AJCC 8th edition" in messages
    patient = result.patient
    assert patient is not None
    assert list(patient.labs.values_list("analyte", "value")) == [("haemoglobin", 9.5)]


def test_import_command_refuses_an_unknown_site() -> None:
    with pytest.raises(CommandError, match="Unknown site 'nowhere'"):
        call_command("import_patients", str(EXAMPLES), site="nowhere")
