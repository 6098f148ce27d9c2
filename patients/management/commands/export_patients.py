"""``manage.py export_patients``: every patient as profile JSON or CSV (recorded as access)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.commands import write_export
from patients import exports
from patients.audit import record_access
from patients.models import Patient


class Command(BaseCommand):
    help = "Export patient profiles with derived facts and surgical candidacy (JSON or CSV)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("json", "csv"), default="json")
        parser.add_argument("--output", type=Path, help="Write here instead of stdout.")
        parser.add_argument("--site", help="Only this site's patients (site code).")

    def handle(self, *args: Any, **options: Any) -> None:
        queryset = Patient.objects.all()
        if options["site"]:
            queryset = queryset.filter(site__code=options["site"])
        patients = exports.export_queryset(queryset)
        write = exports.write_json if options["format"] == "json" else exports.write_csv
        documents = self._recorded(exports.iter_documents(patients))
        write_export(self, write, documents, options["output"], "patient(s)")

    def _recorded(self, documents: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each exported patient lands in the audit trail as read by this export."""
        batch: list[Patient] = []
        for document in documents:
            batch.append(Patient(pk=document.pop("_pk")))
            yield document
            if len(batch) >= 200:
                record_access(batch, purpose="export_patients command")
                batch.clear()
        record_access(batch, purpose="export_patients command")
