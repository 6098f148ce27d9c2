"""FHIR R4 bundles become profiles: every fact kind, units converted, sources kept."""

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from patients import models
from patients.facts import patient_facts, with_facts
from patients.fhir import BundleError, read_bundle
from patients.services import ImportReport, import_patient_files, patient_upsert
from tests.patients.conftest import EXAMPLES, example
from trials.eligibility import facts as engine

pytestmark = pytest.mark.django_db


def imported(name: str, document: dict[str, Any] | None = None) -> models.Patient:
    profile = read_bundle(document or example(name), origin=f"{name}.json")
    result = patient_upsert(profile, source=models.Source.FHIR)
    assert result.patient is not None
    return with_facts(models.Patient.objects.filter(pk=result.patient.pk)).get()


def ucum(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def entry(document: dict[str, Any], text: str) -> dict[str, Any]:
    """The resource of the entry whose code text contains ``text``."""
    for item in document["entry"]:
        code = item["resource"].get("code", {})
        if text.lower() in json.dumps(code).lower():
            return item["resource"]
    raise LookupError(text)


def test_ex1_imports_every_fact_it_carries() -> None:
    patient = imported("EX1")

    assert (patient.external_id, patient.sex, patient.birth_date) == (
        "EX1",
        "female",
        datetime.date(1962, 6, 15),
    )
    assert (patient.postal_code, patient.country, patient.location_precision) == (
        "10021",
        "US",
        "postal_code",
    )
    assert patient.latitude == pytest.approx(40.77, abs=0.05)
    primary = patient.primary_cancer
    assert (primary.site, primary.histology, primary.morphology_code, primary.icd10_code) == (
        "stomach",
        "adenocarcinoma",
        "8140/3",
        "C16.9",
    )
    assert primary.observed_on == datetime.date(2026, 10, 28)
    stages = {(s.context, s.category): s.value for s in patient.stages.all()}
    assert stages == {
        ("clinical", "T"): "T3",
        ("clinical", "N"): "N2",
        ("clinical", "M"): "M0",
        ("clinical", "stage"): "III",
    }
    assert [(p.scale, p.value) for p in patient.performance.all()] == [("ecog", 0)]
    labs = {lab.analyte: lab for lab in patient.labs.all()}
    assert set(labs) == {
        "anc",
        "platelets",
        "haemoglobin",
        "creatinine",
        "bilirubin",
        "ast",
        "alt",
        "weight",
        "height",
    }
    assert (labs["anc"].original_value, labs["anc"].original_unit) == (3.4, "10*3/uL")
    assert (labs["anc"].value, labs["anc"].unit) == (3.4, "10^9/L")
    assert (labs["creatinine"].uln, labs["creatinine"].unit) == (1.1, "mg/dL")
    markers = {m.marker: (m.value, m.numeric_value) for m in patient.biomarkers.all()}
    assert markers == {
        "her2_status": ("negative", None),
        "msi": ("MSS", None),
        "pdl1_cps": ("", 10.0),
    }
    assert [(s.procedure, s.status) for s in patient.surgeries.all()] == [
        ("subtotal_gastrectomy", "planned")
    ]


def test_every_fact_keeps_its_bundle_and_resource() -> None:
    patient = imported("EX1")
    document = example("EX1")
    full_urls = {item["fullUrl"] for item in document["entry"]}

    facts = [patient.primary_cancer, *patient.stages.all(), *patient.labs.all()]
    for fact in facts:
        assert fact.source == models.Source.FHIR
        assert fact.source_key in full_urls
        assert fact.source_reference.startswith("EX1.json, ")
        assert fact.source_key in fact.source_reference


def test_ex2_metastasis_and_ex3_comorbidity() -> None:
    ex2 = imported("EX2")
    ex3 = imported("EX3")

    assert [(m.location, m.icd10_code) for m in ex2.metastases.all()] == [("peritoneum", "C78.6")]
    assert ex2.primary_cancer.site == "gej"  # C16.0: cardia / GEJ
    comorbidity = ex3.comorbidities.get()
    assert (comorbidity.kind, comorbidity.icd10_code, comorbidity.present, comorbidity.active) == (
        "autoimmune",
        "E10.9",
        True,
        True,
    )
    assert "Type 1 diabetes" in comorbidity.name


@pytest.mark.parametrize("name", ["EX1", "EX2", "EX3"])
def test_surgical_candidacy_is_what_the_expectations_say(
    name: str, expectations: dict[str, Any]
) -> None:
    facts = patient_facts(imported(name))

    assert (
        engine.surgical_candidate(facts).value
        == expectations["patients"][name]["surgical_candidate"]
    )


def test_labs_in_other_units_are_converted_and_the_original_kept() -> None:
    document = example("EX1")
    haemoglobin = entry(document, "Hemoglobin")
    haemoglobin["valueQuantity"] = ucum(129, "g/L")
    creatinine = entry(document, "Creatinine")
    creatinine["valueQuantity"] = ucum(168, "umol/L")
    creatinine["referenceRange"] = [{"high": ucum(106, "umol/L")}]
    anc = entry(document, "Neutrophils")
    anc["valueQuantity"] = ucum(1500, "/mm3")

    labs = {lab.analyte: lab for lab in imported("EX1", document).labs.all()}

    assert (labs["haemoglobin"].value, labs["haemoglobin"].unit) == (12.9, "g/dL")
    assert (labs["haemoglobin"].original_value, labs["haemoglobin"].original_unit) == (129, "g/L")
    assert labs["creatinine"].value == pytest.approx(1.9005, abs=1e-4)
    assert labs["creatinine"].uln == pytest.approx(1.199, abs=1e-3)
    assert labs["creatinine"].original_uln == 106
    assert labs["anc"].value == 1.5


def test_the_same_bundle_twice_changes_nothing() -> None:
    first = read_bundle(example("EX1"), origin="EX1.json")
    patient_upsert(first, source=models.Source.FHIR)
    before = {
        type(fact).__name__ + str(fact.pk): fact.recorded_at
        for model in models.FACT_MODELS
        for fact in model._default_manager.all()
    }

    again = patient_upsert(read_bundle(example("EX1"), origin="EX1.json"), source="fhir")

    assert again.status == "unchanged"
    after = {
        type(fact).__name__ + str(fact.pk): fact.recorded_at
        for model in models.FACT_MODELS
        for fact in model._default_manager.all()
    }
    assert after == before


def test_a_newer_bundle_updates_only_what_changed_and_an_older_one_is_refused() -> None:
    original = example("EX1")
    original["timestamp"] = "2026-11-20T10:00:00Z"
    patient_upsert(read_bundle(original, origin="EX1.json"), source="fhir")
    newer = copy.deepcopy(original)
    newer["timestamp"] = "2026-11-25T10:00:00Z"
    entry(newer, "ECOG")["valueInteger"] = 2
    ecog_before = models.PerformanceStatus.objects.get()

    updated = patient_upsert(read_bundle(newer, origin="EX1-new.json"), source="fhir")

    assert updated.status == "updated"
    assert (updated.facts_created, updated.facts_updated, updated.facts_deleted) == (0, 1, 0)
    ecog = models.PerformanceStatus.objects.get()
    assert (ecog.pk, ecog.value) == (ecog_before.pk, 2)

    stale = patient_upsert(read_bundle(original, origin="EX1-old.json"), source="fhir")
    assert stale.status == "stale"
    assert models.PerformanceStatus.objects.get().value == 2


def test_facts_entered_by_a_coordinator_survive_a_reimport() -> None:
    patient = imported("EX1")
    models.Comorbidity.objects.create(
        patient=patient, kind="hiv", present=False, source=models.Source.ADMIN
    )
    changed = example("EX1")
    entry(changed, "ECOG")["valueInteger"] = 1

    patient_upsert(read_bundle(changed, origin="EX1.json"), source="fhir")

    assert models.Comorbidity.objects.filter(patient=patient, kind="hiv").exists()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a FHIR Bundle"),
        ({"resourceType": "Patient"}, "not a FHIR Bundle"),
        ({"resourceType": "Bundle", "type": "collection"}, "has no entries"),
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "no valid Patient"),
    ],
)
def test_unusable_documents_are_refused_with_a_reason(document: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        read_bundle(document, origin="x.json")


def test_two_patients_or_no_identifier_are_refused() -> None:
    two = example("EX1")
    two["entry"].append(copy.deepcopy(two["entry"][0]))
    with pytest.raises(BundleError, match="2 Patient resources"):
        read_bundle(two, origin="x.json")

    anonymous = example("EX1")
    anonymous["entry"][0]["resource"].pop("identifier")
    with pytest.raises(BundleError, match=r"no identifier\[0\].value"):
        read_bundle(anonymous, origin="x.json")


def test_bad_resources_are_reported_and_the_rest_imported() -> None:
    document = example("EX1")
    entry(document, "Platelets")["valueQuantity"]["code"] = "furlongs"
    entry(document, "Hemoglobin")["effectiveDateTime"] = "2026-13-45"
    entry(document, "ECOG")["valueInteger"] = 7
    entry(document, "Body weight")["valueQuantity"] = {"value": 70}
    stage = entry(document, "Primary tumor")
    stage["valueCodeableConcept"] = {
        "coding": [{"system": "http://cancerstaging.org", "code": "cT9"}]
    }

    profile = read_bundle(document, origin="EX1.json")
    result = patient_upsert(profile, source="fhir")

    messages = [str(problem) for problem in result.problems]
    assert any("Platelets" not in m and "furlongs" in m for m in messages), messages
    assert any("effectiveDateTime" in m and "not valid FHIR R4" in m for m in messages)
    assert any("ECOG is a score from 0 to 5" in m for m in messages)
    assert any("lab result without a unit" in m for m in messages)
    assert any("T value not an AJCC 8th edition code (cT9)" in m for m in messages)
    patient = result.patient
    assert patient is not None
    analytes = set(patient.labs.values_list("analyte", flat=True))
    assert "anc" in analytes
    assert not {"platelets", "haemoglobin", "weight"} & analytes
    assert not patient.performance.exists()


def test_import_files_reports_each_file_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "empty.json").write_text(json.dumps({"resourceType": "Bundle", "entry": []}))
    for name in ("EX1", "EX2"):
        (tmp_path / f"{name}.json").write_text((EXAMPLES / f"{name}.json").read_text())

    report: ImportReport = import_patient_files([tmp_path, tmp_path / "nowhere"])

    assert (report.files, report.created, report.rejected) == (4, 2, 3)
    where = {problem.where: problem.message for problem in report.problems}
    assert where["broken.json"].startswith("not readable JSON")
    assert where["empty.json"] == "the Bundle has no valid Patient resource"
    assert where[str(tmp_path / "nowhere")] == "no such file or folder"
    assert models.Patient.objects.count() == 2
