"""``manage.py export_trials``: every trial as JSON or CSV, to stdout or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.commands import write_export
from trials import exports


class Command(BaseCommand):
    help = "Export every trial (with sites) as JSON or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("json", "csv"), default="json")
        parser.add_argument("--output", type=Path, help="Write here instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        write = exports.write_json if options["format"] == "json" else exports.write_csv
        rows = exports.iter_rows(exports.export_queryset())
        write_export(self, write, rows, options["output"], "trial(s)")
