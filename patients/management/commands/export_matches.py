"""``manage.py export_matches``: stored matches as JSON or CSV (recorded as access)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.commands import write_export
from patients import match_exports
from patients.audit import record_access
from patients.models import Match, Patient


class Command(BaseCommand):
    help = (
        "Export the stored matches: one object per (patient, trial) with the verdict, the flag, "
        "the score, the distance and every criterion's outcome and reason."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("json", "csv"), default="json")
        parser.add_argument("--output", type=Path, help="Write here instead of stdout.")
        parser.add_argument("--patient", action="append", metavar="EXTERNAL_ID")
        parser.add_argument("--trial", action="append", metavar="NCT_ID")
        parser.add_argument("--flagged", action="store_true", help="Only flagged pairs.")
        parser.add_argument(
            "--verdict", choices=[v.value for v in Match.Verdict], help="Only this verdict."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queryset = Match.objects.all()
        if options["patient"]:
            queryset = queryset.filter(patient__external_id__in=options["patient"])
        if options["trial"]:
            queryset = queryset.filter(trial__nct_id__in=[t.upper() for t in options["trial"]])
        if options["flagged"]:
            queryset = queryset.filter(flagged=True)
        if options["verdict"]:
            queryset = queryset.filter(verdict=options["verdict"])
        documents = self._recorded(
            match_exports.iter_documents(match_exports.export_queryset(queryset))
        )
        write = match_exports.write_json if options["format"] == "json" else match_exports.write_csv
        write_export(self, write, documents, options["output"], "match(es)")

    def _recorded(self, documents: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each patient whose matches are exported lands in the audit trail once."""
        seen: set[int] = set()
        batch: list[Patient] = []
        for item in documents:
            pk = item.pop("_pk")
            if pk not in seen:
                seen.add(pk)
                batch.append(Patient(pk=pk))
            yield item
            if len(batch) >= 200:
                record_access(batch, purpose="export_matches command")
                batch.clear()
        record_access(batch, purpose="export_matches command")
