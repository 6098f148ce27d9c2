"""A stored profile as the engine's ``PatientFacts`` (the one place the two meet).

Where a fact was recorded more than once (two ECOG scores, labs over time) the latest by date
wins; undated values count as the oldest.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TypeVar

from django.db.models import Prefetch, QuerySet

from patients import models
from trials.eligibility import facts as engine
from trials.eligibility.geo import Place
from trials.eligibility.units import Analyte
from trials.eligibility.vocabulary import CancerSite, Histology

FACT_RELATIONS = (
    "stages",
    "metastases",
    "performance",
    "labs",
    "biomarkers",
    "treatments",
    "medications",
    "comorbidities",
    "reproductive",
    "surgeries",
)
F = TypeVar("F", bound=models.Fact)
_OLDEST = datetime.date.min


def with_facts(queryset: QuerySet[models.Patient]) -> QuerySet[models.Patient]:
    """Patients with every fact loaded in a fixed number of queries."""
    return queryset.select_related("site", "primary_cancer").prefetch_related(
        *(Prefetch(name) for name in FACT_RELATIONS)
    )


def provenance(fact: models.Fact) -> engine.Provenance:
    return engine.Provenance(source=fact.provenance_text(), date=fact.observed_on)


def newest(rows: Iterable[F]) -> F | None:
    best: F | None = None
    for row in rows:
        if best is None or (row.observed_on or _OLDEST, row.pk or 0) >= (
            best.observed_on or _OLDEST,
            best.pk or 0,
        ):
            best = row
    return best


def patient_facts(patient: models.Patient) -> engine.PatientFacts:
    """The engine's view of a stored patient (use ``with_facts`` to load many at once)."""
    primary = patient.primary_cancer if has_primary_cancer(patient) else None
    stages = list(patient.stages.all())
    performance = newest(patient.performance.all())
    metastases = list(patient.metastases.all())
    reproductive = newest(patient.reproductive.all())
    biomarkers: dict[str, models.Biomarker] = {}
    for marker in patient.biomarkers.all():
        held = biomarkers.get(marker.marker)
        if held is None or newest([held, marker]) is marker:
            biomarkers[marker.marker] = marker
    labs: dict[Analyte, models.LabResult] = {}
    for lab in patient.labs.all():
        analyte = Analyte(lab.analyte)
        if analyte not in labs or newest([labs[analyte], lab]) is lab:
            labs[analyte] = lab
    cytology = _staging(stages, "clinical", "CY") or _staging(stages, "pathological", "CY")
    pdl1 = biomarkers.pop("pdl1_cps", None)
    return engine.PatientFacts(
        external_id=patient.external_id,
        sex=patient.sex or None,
        birth_date=patient.birth_date,
        location=(
            Place(patient.latitude, patient.longitude, patient.location_precision)
            if patient.latitude is not None and patient.longitude is not None
            else None
        ),
        primary_site=CancerSite(primary.site) if primary and primary.site else None,
        primary_site_code=(primary.icd10_code or "") if primary else "",
        primary_site_provenance=provenance(primary) if primary else engine.Provenance(),
        siewert_type=primary.siewert_type or None if primary else None,
        histology=Histology(primary.histology) if primary and primary.histology else None,
        histology_provenance=provenance(primary) if primary else engine.Provenance(),
        diagnosis_date=primary.observed_on if primary else None,
        clinical=_context(stages, "clinical"),
        pathological=_context(stages, "pathological"),
        peritoneal_cytology_positive=(cytology.value == "CY1") if cytology else None,
        metastatic_sites=tuple(sorted({m.location for m in metastases})),
        metastases_provenance=provenance(metastases[0]) if metastases else engine.Provenance(),
        ecog=performance.value if performance and performance.scale == "ecog" else None,
        karnofsky=performance.value if performance and performance.scale == "karnofsky" else None,
        performance_provenance=provenance(performance) if performance else engine.Provenance(),
        labs={
            analyte: engine.LabValue(
                analyte=analyte,
                value=lab.value,
                unit=lab.unit,
                original_value=lab.original_value,
                original_unit=lab.original_unit,
                uln=lab.uln,
                provenance=provenance(lab),
            )
            for analyte, lab in labs.items()
        },
        biomarkers={name: marker.value for name, marker in biomarkers.items() if marker.value},
        pdl1_cps=pdl1.numeric_value if pdl1 else None,
        prior_anticancer_therapy=patient.prior_anticancer_therapy,
        treatments=tuple(
            engine.Treatment(
                category=engine.TreatmentCategory(t.category),
                agent=t.agent,
                agent_class=t.agent_class,
                intent=t.intent,
                status=t.status,
                start=t.start_date,
                end=t.end_date,
                provenance=provenance(t),
            )
            for t in patient.treatments.all()
        ),
        medications=tuple(
            engine.Medication(
                name=m.name,
                category=m.category,
                active=m.active,
                prednisone_mg_per_day=m.prednisone_mg_per_day,
                start=m.start_date,
                end=m.end_date,
                provenance=provenance(m),
            )
            for m in patient.medications.all()
        ),
        comorbidities=tuple(
            engine.Comorbidity(
                kind=engine.ComorbidityKind(c.kind),
                name=c.name,
                present=c.present,
                active=c.active,
                onset=c.onset_date,
                provenance=provenance(c),
            )
            for c in patient.comorbidities.all()
        ),
        pregnant=reproductive.pregnant if reproductive else None,
        breastfeeding=reproductive.breastfeeding if reproductive else None,
        surgeries=tuple(
            engine.Surgery(
                procedure=s.procedure, status=s.status, date=s.observed_on, provenance=provenance(s)
            )
            for s in patient.surgeries.all()
        ),
    )


def has_primary_cancer(patient: models.Patient) -> bool:
    try:
        patient.primary_cancer  # noqa: B018 - the related object may not exist
    except models.PrimaryCancer.DoesNotExist:
        return False
    return True


def _staging(
    stages: list[models.StageObservation], context: str, category: str
) -> models.StageObservation | None:
    return newest(s for s in stages if s.context == context and s.category == category)


def _context(stages: list[models.StageObservation], context: str) -> dict[str, engine.Staging]:
    found: dict[str, engine.Staging] = {}
    for category in ("T", "N", "M", "stage"):
        row = _staging(stages, context, category)
        if row is not None:
            found[category] = engine.Staging(row.value, provenance(row))
    return found
