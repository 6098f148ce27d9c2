"""Patients as profile documents (the JSON format) and CSV rows, with derived facts."""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterator
from typing import IO, Any

from django.db.models import QuerySet
from django.utils import timezone

from config import spreadsheet
from patients import models
from patients.facts import has_primary_cancer, patient_facts, with_facts
from patients.profile_json import SECTIONS, fact_fields
from trials.eligibility import facts as engine
from trials.eligibility.units import Analyte


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.date) else value


def _fact_document(fact: models.Fact) -> dict[str, Any]:
    document = {field.name: _value(getattr(fact, field.name)) for field in fact_fields(type(fact))}
    document["date"] = _value(fact.observed_on)
    document["id"] = fact.source_key or f"{type(fact).__name__}/{fact.pk}"
    document["source"] = fact.provenance_text()
    return document


def derived_facts(facts: engine.PatientFacts, on: datetime.date) -> dict[str, Any]:
    """The derived values with their explanations (the same ones the matcher uses)."""
    derived: dict[str, Any] = {}
    for name, item in (
        ("performance_status", engine.performance_status(facts)),
        ("creatinine_clearance", engine.creatinine_clearance(facts, on)),
        ("bilirubin_uln_multiple", engine.uln_multiple(facts, Analyte.BILIRUBIN)),
        ("ast_uln_multiple", engine.uln_multiple(facts, Analyte.AST)),
        ("alt_uln_multiple", engine.uln_multiple(facts, Analyte.ALT)),
        ("creatinine_uln_multiple", engine.uln_multiple(facts, Analyte.CREATININE)),
    ):
        derived[name] = {"value": item.value, "explanation": item.explanation}
    return derived


def profile_document(patient: models.Patient, on: datetime.date | None = None) -> dict[str, Any]:
    """One patient in the profile JSON format (load with ``patients.facts.with_facts``)."""
    on = on or timezone.localdate()
    facts = patient_facts(patient)
    candidate = engine.surgical_candidate(facts)
    primary = patient.primary_cancer if has_primary_cancer(patient) else None
    document: dict[str, Any] = {
        "external_id": patient.external_id,
        "site": patient.site.code,
        "sex": patient.sex or None,
        "birth_date": _value(patient.birth_date),
        "postal_code": patient.postal_code,
        "city": patient.city,
        "country": patient.country,
        "prior_anticancer_therapy": patient.prior_anticancer_therapy,
        "age": engine.age(facts, on),
        "primary_cancer": _fact_document(primary) if primary else None,
    }
    relations: dict[str, Any] = {
        "staging": patient.stages,
        "metastases": patient.metastases,
        "performance_status": patient.performance,
        "labs": patient.labs,
        "biomarkers": patient.biomarkers,
        "treatments": patient.treatments,
        "medications": patient.medications,
        "comorbidities": patient.comorbidities,
        "reproductive_status": patient.reproductive,
        "surgeries": patient.surgeries,
    }
    assert relations.keys() == SECTIONS.keys()
    for section, manager in relations.items():
        document[section] = [_fact_document(fact) for fact in manager.all()]
    document["derived"] = derived_facts(facts, on)
    document["surgical_candidate"] = candidate.value
    document["surgical_candidate_reason"] = candidate.explanation
    return document


def export_queryset(queryset: QuerySet[models.Patient] | None = None) -> QuerySet[models.Patient]:
    queryset = queryset if queryset is not None else models.Patient.objects.all()
    return with_facts(queryset.order_by("site__code", "external_id"))


def iter_documents(queryset: QuerySet[models.Patient]) -> Iterator[dict[str, Any]]:
    """Profile documents, each with its patient's primary key under ``_pk`` (for auditing;
    the caller removes it)."""
    on = timezone.localdate()
    for patient in queryset.iterator(chunk_size=200):
        document = profile_document(patient, on)
        document["_pk"] = patient.pk
        yield document


def write_json(documents: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    stream.write("[")
    for document in documents:
        stream.write(",\n" if count else "\n")
        stream.write(json.dumps(document, ensure_ascii=False))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


CSV_COLUMNS = (
    "external_id",
    "site",
    "age",
    "sex",
    "primary_site",
    "histology",
    "clinical_t",
    "clinical_n",
    "clinical_m",
    "clinical_stage",
    "metastatic_sites",
    "performance_status",
    "anc_10e9_per_l",
    "platelets_10e9_per_l",
    "haemoglobin_g_per_dl",
    "creatinine_mg_per_dl",
    "creatinine_clearance_ml_per_min",
    "bilirubin_x_uln",
    "her2_status",
    "msi",
    "pdl1_cps",
    "surgical_candidate",
    "surgical_candidate_reason",
)


def write_csv(documents: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    """One line per patient with the facts trial criteria ask most about."""
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for document in documents:
        writer.writerow(spreadsheet.row(_csv_row(document)))
        count += 1
    return count


def _csv_row(document: dict[str, Any]) -> dict[str, Any]:
    def clinical(category: str) -> str:
        rows = [
            s
            for s in document["staging"]
            if s["context"] == "clinical" and s["category"] == category
        ]
        return max(rows, key=lambda s: s["date"] or "")["value"] if rows else ""

    def lab(analyte: Analyte) -> Any:
        rows = [row for row in document["labs"] if row["analyte"] == analyte.value]
        return max(rows, key=lambda row: row["date"] or "")["value"] if rows else ""

    def marker(name: str) -> Any:
        rows = [row for row in document["biomarkers"] if row["marker"] == name]
        if not rows:
            return ""
        row = max(rows, key=lambda r: r["date"] or "")
        return row["value"] or row["numeric_value"]

    primary = document["primary_cancer"] or {}
    derived = document["derived"]
    return {
        "external_id": document["external_id"],
        "site": document["site"],
        "age": document["age"],
        "sex": document["sex"] or "",
        "primary_site": primary.get("site", ""),
        "histology": primary.get("histology", ""),
        "clinical_t": clinical("T"),
        "clinical_n": clinical("N"),
        "clinical_m": clinical("M"),
        "clinical_stage": clinical("stage"),
        "metastatic_sites": "; ".join(sorted({m["location"] for m in document["metastases"]})),
        "performance_status": derived["performance_status"]["explanation"]
        if derived["performance_status"]["value"] is not None
        else "",
        "anc_10e9_per_l": lab(Analyte.ANC),
        "platelets_10e9_per_l": lab(Analyte.PLATELETS),
        "haemoglobin_g_per_dl": lab(Analyte.HAEMOGLOBIN),
        "creatinine_mg_per_dl": lab(Analyte.CREATININE),
        "creatinine_clearance_ml_per_min": _blank(derived["creatinine_clearance"]["value"]),
        "bilirubin_x_uln": _blank(derived["bilirubin_uln_multiple"]["value"]),
        "her2_status": marker("her2_status"),
        "msi": marker("msi"),
        "pdl1_cps": marker("pdl1_cps"),
        "surgical_candidate": _blank(document["surgical_candidate"]),
        "surgical_candidate_reason": document["surgical_candidate_reason"],
    }


def _blank(value: Any) -> Any:
    return "" if value is None else value
