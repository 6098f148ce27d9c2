"""``manage.py export_trials``: every trial as JSON or CSV, to stdout or a file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials import exports


class Command(BaseCommand):
    help = "Export every trial (with sites) as JSON or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("json", "csv"), default="json")
        parser.add_argument("--output", type=Path, help="Write here instead of stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        write = exports.write_json if options["format"] == "json" else exports.write_csv
        rows = exports.iter_rows(exports.export_queryset())
        output: Path | None = options["output"]
        if output is None:
            self.stdout.ending = ""  # the writers end their own lines
            try:
                write(rows, self.stdout)  # type: ignore[arg-type]
            except BrokenPipeError:
                # The reader (e.g. `head`) stopped early; that is not an error.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as stream:
                count = write(rows, stream)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from None
        self.stderr.write(f"Exported {count} trial(s) to {output}.")
