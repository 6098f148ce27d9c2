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
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "no Patient resource"),
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
    with pytest.raises(BundleError, match="no identifier with a value"):
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
    assert where["empty.json"] == "the Bundle has no Patient resource"
    assert where[str(tmp_path / "nowhere")] == "no such file or folder"
    assert models.Patient.objects.count() == 2


# --- Coagulation, ALP, urine protein, cardiac measurements and cardiovascular history ----------

LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def with_resources(document: dict[str, Any], *resources: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``resources`` added as entries about its Patient."""
    patient = document["entry"][0]["fullUrl"]
    for index, resource in enumerate(resources):
        document["entry"].append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{index:012d}",
                "resource": {**resource, "subject": {"reference": patient}},
            }
        )
    return document


def observation(code: str, display: str, quantity: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "effectiveDateTime": "2026-11-26",
        "valueQuantity": quantity,
        **extra,
    }


def condition(code: str, display: str, **extra: Any) -> dict[str, Any]:
    """A comorbidity as the probe bundles write one: ICD-10-CM, active, confirmed."""
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    verification = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": clinical, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": verification, "code": "confirmed"}]},
        "code": {
            "coding": [{"system": ICD10CM, "code": code, "display": display}],
            "text": display,
        },
        **extra,
    }


NEW_LABS: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
    # (LOINC, display, quantity as sent, reference range high or None)
    (
        "6301-6",
        "INR in Platelet poor plasma by Coagulation assay",
        {"value": 1.1, "unit": "INR", "system": "http://unitsofmeasure.org", "code": "{INR}"},
        None,
    ),
    ("5902-2", "Prothrombin time (PT)", ucum(13.5, "s"), ucum(13.0, "s")),
    ("14979-9", "aPTT in Platelet poor plasma by Coagulation assay", ucum(31, "s"), None),
    (
        "6768-6",
        "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
        ucum(180, "U/L"),
        ucum(120, "U/L"),
    ),
    ("2889-4", "Protein [Mass/time] in 24 hour Urine", ucum(350, "mg/(24.h)"), None),
    ("10230-1", "Left ventricular Ejection fraction", ucum(58, "%"), None),
    ("8636-3", "QT interval corrected", ucum(452, "ms"), None),
]


def test_coagulation_alp_urine_protein_lvef_and_qtc_are_imported_in_canonical_units() -> None:
    labs_in = [
        observation(
            code, display, quantity, **({"referenceRange": [{"high": high}]} if high else {})
        )
        for code, display, quantity, high in NEW_LABS
    ]
    patient = imported("EX1", with_resources(example("EX1"), *labs_in))

    labs = {
        lab.analyte: (lab.value, lab.unit, lab.uln, lab.original_value, lab.original_unit)
        for lab in patient.labs.all()
    }
    assert labs["inr"] == (1.1, "ratio", None, 1.1, "{INR}")
    assert labs["pt"] == (13.5, "s", 13.0, 13.5, "s")
    assert labs["aptt"] == (31, "s", None, 31, "s")
    assert labs["alp"] == (180, "U/L", 120, 180, "U/L")
    assert labs["urine_protein"] == (0.35, "g/24h", None, 350, "mg/(24.h)")
    assert labs["lvef"] == (58, "%", None, 58, "%")
    assert labs["qtc"] == (452, "ms", None, 452, "ms")
    facts = patient_facts(patient)
    assert engine.uln_multiple(facts, engine.Analyte.ALP).value == 1.5
    assert engine.uln_multiple(facts, engine.Analyte.PT).value == pytest.approx(1.04)


def test_results_of_another_quantity_are_reported_not_imported() -> None:
    document = with_resources(
        example("EX1"),
        observation("8634-8", "QT interval", ucum(420, "ms")),  # not corrected: not the QTc
        observation("2888-6", "Protein [Mass/volume] in Urine", ucum(30, "mg/dL")),
        observation("5804-0", "Protein [Mass/volume] in Urine by Test strip", ucum(30, "mg/dL")),
        observation("5902-2", "Prothrombin time (PT)", ucum(85, "%")),  # Quick, % activity
        observation("6301-6", "INR in Platelet poor plasma by Coagulation assay", {"value": 1.2}),
    )

    result = patient_upsert(read_bundle(document, origin="EX1.json"), source="fhir")

    assert result.patient is not None
    analytes = set(result.patient.labs.values_list("analyte", flat=True))
    assert not {"qtc", "urine_protein", "pt", "inr"} & analytes
    messages = " | ".join(str(problem) for problem in result.problems)
    assert "observation not used (qt interval)" in messages
    assert "observation not used (protein [mass/volume] in urine)" in messages
    assert 'Unit "%" cannot be used for prothrombin time' in messages
    assert "lab result without a unit" in messages


CARDIOVASCULAR: list[tuple[str, str, dict[str, Any], str, datetime.date | None]] = [
    # (ICD-10-CM, display, extra Condition fields, kind, onset imported)
    (
        "I21.4",
        "Non-ST elevation (NSTEMI) myocardial infarction",
        {"onsetDateTime": "2026-09-02"},
        "myocardial_infarction",
        datetime.date(2026, 9, 2),
    ),
    # An old infarction: recordedDate is when it was written down, not when it happened.
    (
        "I25.2",
        "Old myocardial infarction",
        {"recordedDate": "2026-11-20"},
        "myocardial_infarction",
        None,
    ),
    ("I20.0", "Unstable angina", {}, "unstable_angina", None),
    # As in the mCODE example patient (mcode-ig-john-anyperson.json).
    ("I50.32", "Chronic diastolic (congestive) heart failure", {}, "heart_failure", None),
    ("I11.0", "Hypertensive heart disease with heart failure", {}, "heart_failure", None),
    ("I48.91", "Unspecified atrial fibrillation", {}, "arrhythmia", None),
    (
        "I63.9",
        "Cerebral infarction, unspecified",
        {"onsetPeriod": {"start": "2025-03-01"}},
        "stroke",
        datetime.date(2025, 3, 1),
    ),
    ("G45.9", "Transient cerebral ischemic attack, unspecified", {}, "stroke", None),
    (
        "I74.3",
        "Embolism and thrombosis of arteries of the lower extremities",
        {},
        "arterial_thromboembolism",
        None,
    ),
    (
        "I82.401",
        "Acute embolism and thrombosis of unspecified deep veins of right lower extremity",
        {"recordedDate": "2026-10-01"},
        "venous_thromboembolism",
        datetime.date(2026, 10, 1),
    ),
    (
        "I26.99",
        "Other pulmonary embolism without acute cor pulmonale",
        {},
        "venous_thromboembolism",
        None,
    ),
    (
        "Z86.711",
        "Personal history of pulmonary embolism",
        {"recordedDate": "2026-11-20"},
        "venous_thromboembolism",
        None,
    ),
]


def test_cardiovascular_conditions_become_comorbidities_of_their_kind() -> None:
    document = with_resources(
        example("EX1"),
        *(condition(code, display, **extra) for code, display, extra, _, _ in CARDIOVASCULAR),
    )

    patient = imported("EX1", document)

    found = {
        c.icd10_code: (c.kind, c.onset_date, c.present, c.active)
        for c in patient.comorbidities.all()
    }
    assert found == {code: (kind, onset, True, True) for code, _, _, kind, onset in CARDIOVASCULAR}
    kinds = {c.kind.value for c in patient_facts(patient).comorbidities}
    assert kinds == {kind for *_, kind, _ in CARDIOVASCULAR}


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("I10", "Essential (primary) hypertension"),
        ("I11.9", "Hypertensive heart disease without heart failure"),
        ("I80.0", "Phlebitis and thrombophlebitis of superficial vessels of lower extremities"),
        ("G45.4", "Transient global amnesia"),  # not a transient ischaemic attack
        ("I25.10", "Atherosclerotic heart disease of native coronary artery"),
    ],
)
def test_neighbouring_codes_are_not_read_as_cardiovascular_events(code: str, display: str) -> None:
    profile = read_bundle(with_resources(example("EX1"), condition(code, display)), origin="x.json")
    result = patient_upsert(profile, source="fhir")

    assert result.patient is not None
    assert not result.patient.comorbidities.exists()
    assert any(
        f"condition not used by trial criteria ({display})" in str(problem)
        for problem in result.problems
    )
