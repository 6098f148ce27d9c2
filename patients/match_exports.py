"""Stored matches as documents (JSON) and rows (CSV): one per (patient, trial)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from django.db.models import QuerySet

from config import spreadsheet
from patients.matching import CRITERIA_OF_FIELDS, MATCHER_VERSION, criteria_of
from patients.models import Match
from trials.eligibility.geo import km_to_miles
from trials.models import Criterion

# What a match document shows of its trial: the rest (the record as received, the texts) is
# not loaded with the matches.
DOCUMENT_TRIAL_FIELDS = (
    "nct_id",
    "brief_title",
    "official_title",
    "overall_status",
    "gastric_preop_immunotherapy",
    "matching_inputs_at",
)


def with_document_fields(queryset: QuerySet[Match]) -> QuerySet[Match]:
    """``queryset`` with its trials joined, loading only what ``document`` reads of them."""
    return queryset.select_related("trial").only(
        *(field.name for field in Match._meta.concrete_fields),
        *(f"trial__{name}" for name in DOCUMENT_TRIAL_FIELDS),
    )


def export_queryset(queryset: QuerySet[Match] | None = None) -> QuerySet[Match]:
    queryset = queryset if queryset is not None else Match.objects.all()
    return queryset.select_related("patient", "patient__site", "trial").order_by(
        "patient__site__code", "patient__external_id", "-flagged", "verdict", "-score"
    )


def iter_documents(queryset: QuerySet[Match]) -> Iterator[dict[str, Any]]:
    """Match documents; each carries its patient's primary key under ``_pk`` (for the audit
    trail; the caller removes it)."""
    criteria_by_trial: dict[int, list[Criterion]] = {}
    for match in queryset.iterator(chunk_size=500):
        criteria = criteria_by_trial.get(match.trial_id)
        if criteria is None:
            criteria = list(
                Criterion.objects.filter(trial_id=match.trial_id)
                .only(*CRITERIA_OF_FIELDS)
                .order_by("position")
            )
            criteria_by_trial[match.trial_id] = criteria
        yield document(match, criteria)


def document(match: Match, criteria: list[Criterion]) -> dict[str, Any]:
    patient, trial = match.patient, match.trial
    current = (
        match.engine_version == MATCHER_VERSION
        and match.patient_facts_at == patient.facts_changed_at
        and match.trial_inputs_at == trial.matching_inputs_at
    )
    return {
        "patient": patient.external_id,
        "site": patient.site.code,
        "nct_id": trial.nct_id,
        "title": trial.title,
        "overall_status": trial.overall_status,
        "gastric_preop_immunotherapy": trial.gastric_preop_immunotherapy,
        "verdict": match.verdict,
        "flagged": match.flagged,
        "flag_reason": match.flag_reason,
        "score": match.score,
        "distance_km": match.distance_km,
        "distance_miles": round(km_to_miles(match.distance_km), 1)
        if match.distance_km is not None
        else None,
        "unknown_facts": match.unknown_facts,
        "current": current,
        "evaluated_at": match.evaluated_at.isoformat(),
        "criteria": criteria_of(match, criteria),
        "_pk": patient.pk,
    }


def write_json(documents: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    stream.write("[")
    for item in documents:
        stream.write(",\n" if count else "\n")
        stream.write(json.dumps(item, ensure_ascii=False))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


CSV_COLUMNS = (
    "patient",
    "site",
    "nct_id",
    "verdict",
    "flagged",
    "score",
    "distance_km",
    "criteria_met",
    "criteria_not_met",
    "criteria_unknown",
    "disqualifying",
    "unknown_facts",
    "flag_reason",
    "current",
)


def write_csv(documents: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    """One line per pair; the criteria summarised (the JSON export has each with its reason)."""
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for item in documents:
        criteria = item["criteria"]
        disqualifying = [
            f"{c['text'][:80]} ({c['reason']})"
            for c in criteria
            if (c["type"] == "inclusion" and c["outcome"] == "not_met")
            or (c["type"] == "exclusion" and c["outcome"] == "met")
        ]
        writer.writerow(
            spreadsheet.row(
                {
                    "patient": item["patient"],
                    "site": item["site"],
                    "nct_id": item["nct_id"],
                    "verdict": item["verdict"],
                    "flagged": item["flagged"],
                    "score": item["score"],
                    "distance_km": "" if item["distance_km"] is None else item["distance_km"],
                    "criteria_met": sum(c["outcome"] == "met" for c in criteria),
                    "criteria_not_met": sum(c["outcome"] == "not_met" for c in criteria),
                    "criteria_unknown": sum(c["outcome"] == "unknown" for c in criteria),
                    "disqualifying": " | ".join(disqualifying),
                    "unknown_facts": "; ".join(item["unknown_facts"]),
                    "flag_reason": item["flag_reason"],
                    "current": item["current"],
                }
            )
        )
        count += 1
    return count
