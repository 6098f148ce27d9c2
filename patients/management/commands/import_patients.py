"""``manage.py import_patients PATH...``: FHIR R4 bundles or profile JSON files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from patients.models import Site
from patients.services import ImportReport, import_patient_files


class Command(BaseCommand):
    help = (
        "Import patient profiles from FHIR R4 (mCODE) bundles or the profile JSON format: "
        "files or folders of .json files. Importing the same file again changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument(
            "--site", help="Code of the hospital site the patients belong to (default: 'default')."
        )
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Hand the import to the Celery workers (the files must be readable there).",
        )
        parser.add_argument(
            "--no-match", action="store_true", help="Do not evaluate the imported patients."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        site = None
        if options["site"]:
            site = Site.objects.filter(code=options["site"]).first()
            if site is None:
                known = ", ".join(Site.objects.values_list("code", flat=True)) or "none yet"
                raise CommandError(f"Unknown site {options['site']!r} (known: {known}).")
        if options["queue"]:
            from patients.tasks import import_patients_task

            paths = [str(path.resolve()) for path in options["paths"]]
            result = import_patients_task.delay(paths, site.code if site else None)
            self.stdout.write(f"Import queued as task {result.id}.")
            return
        bar = None
        if not options["no_progress"] and sys.stderr.isatty():
            bar = tqdm(unit=" files", file=sys.stderr, dynamic_ncols=True)

        def progress(report: ImportReport) -> None:
            if bar is not None:
                bar.update(1)

        try:
            report = import_patient_files(options["paths"], site=site, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        for problem in report.problems[:50]:
            marker = "left out" if problem.skipped else "note"
            self.stderr.write(f"  {problem.where}: {problem.message} [{marker}]")
        if len(report.problems) > 50:
            self.stderr.write(f"  ... and {len(report.problems) - 50} more")
        summary = report.summary().capitalize()
        if report.changed_patient_ids and not options["no_match"]:
            from patients.matching import match_patients

            run = match_patients(report.changed_patient_ids)
            self.stdout.write(f"Matches computed: {run.summary()}.")
        if report.rejected:
            raise CommandError(f"{summary}. Rejected files are listed above.")
        self.stdout.write(self.style.SUCCESS(summary))
