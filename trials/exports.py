"""Trials as export rows (``manage.py export_trials``): JSON objects or CSV lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from django.db.models import QuerySet

from config import spreadsheet
from trials.models import Trial

CSV_COLUMNS = (
    "nct_id",
    "title",
    "official_title",
    "acronym",
    "overall_status",
    "last_update_posted",
    "conditions",
    "phases",
    "study_type",
    "lead_sponsor",
    "start_date",
    "completion_date",
    "minimum_age",
    "maximum_age",
    "sex",
    "interventions",
    "eligibility_criteria",
    "version_count",
    "removed_from_registry",
    "gastric_preop_immunotherapy",
    "criteria",
    "sites",
)


def trial_export_row(trial: Trial) -> dict[str, Any]:
    """One trial as plain data; ``trial.sites`` should be prefetched."""
    return {
        "nct_id": trial.nct_id,
        "title": trial.title,
        "official_title": trial.official_title,
        "acronym": trial.acronym,
        "overall_status": trial.overall_status,
        "last_update_posted": (
            trial.last_update_posted.isoformat() if trial.last_update_posted else None
        ),
        "conditions": trial.conditions,
        "phases": trial.phases,
        "study_type": trial.study_type,
        "lead_sponsor": trial.lead_sponsor,
        "start_date": trial.start_date or None,
        "completion_date": trial.completion_date or None,
        "minimum_age": _age(trial.minimum_age_value, trial.minimum_age_unit),
        "maximum_age": _age(trial.maximum_age_value, trial.maximum_age_unit),
        "sex": trial.sex,
        "interventions": [
            {"type": item.get("type", ""), "name": item.get("name", "")}
            for item in trial.interventions
        ],
        "eligibility_criteria": trial.eligibility_criteria,
        "version_count": trial.version_count,
        "removed_from_registry": trial.removed_from_registry,
        "sites": [site.as_dict() for site in trial.sites.all()],
        "gastric_preop_immunotherapy": trial.gastric_preop_immunotherapy,
        "classification": {
            "gastric": trial.classified_gastric,
            "immunotherapy": trial.classified_immunotherapy,
            "preoperative": trial.classified_preoperative,
            "coordinator_override": trial.classification_override,
            "evidence": trial.classification_evidence,
        },
        "criteria": [
            {
                "type": criterion.kind,
                "text": criterion.text,
                "category": criterion.effective_category,
                "parsed": criterion.parsed,
                "constraints": criterion.effective_constraints,
                "join": criterion.effective_join,
                "corrected": criterion.corrected,
                # What the engine's own reading left unexplained, and why it is suspect.
                "reading_gaps": criterion.reading_gaps,
                "reading_marks": criterion.reading_marks,
            }
            for criterion in trial.criteria.all()
        ],
    }


def _age(value: Any, unit: str) -> str | None:
    return f"{value.normalize():f} {unit}" if value is not None else None


def export_queryset() -> QuerySet[Trial]:
    return Trial.objects.order_by("nct_id").prefetch_related("sites", "criteria")


def iter_rows(queryset: QuerySet[Trial]) -> Iterator[dict[str, Any]]:
    for trial in queryset.iterator(chunk_size=500):
        yield trial_export_row(trial)


def write_json(rows: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    """A JSON array written one object at a time (memory stays flat); returns the count."""
    count = 0
    stream.write("[")
    for row in rows:
        stream.write(",\n" if count else "\n")
        stream.write(json.dumps(row, ensure_ascii=False))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def write_csv(rows: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    """One line per trial; lists joined with "; ", sites as "facility, city, country [status]"."""
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        flat = dict(row)
        flat["conditions"] = "; ".join(row["conditions"])
        flat["phases"] = "; ".join(row["phases"])
        flat["interventions"] = "; ".join(
            f"{item['type']}: {item['name']}" if item["type"] else item["name"]
            for item in row["interventions"]
        )
        flat["sites"] = "; ".join(_site_text(site) for site in row["sites"])
        flat["criteria"] = "\n".join(
            f"[{item['type']}/{item['category']}{'' if item['parsed'] else ', not read'}] "
            f"{item['text']}"
            for item in row["criteria"]
        )
        writer.writerow(spreadsheet.row(flat))
        count += 1
    return count


def _site_text(site: dict[str, Any]) -> str:
    place = ", ".join(p for p in (site["facility"], site["city"], site["country"]) if p)
    return f"{place} [{site['status']}]" if site["status"] else place
