"""``manage.py match``: patients against the open trials for their cancer, here or in workers."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from patients import matching
from patients.models import Patient
from patients.notify import send_flag_digests
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Evaluate patients against the trials open to enrolment (each patient against those for "
        "their cancer site, or for any site) and store the matches. Every patient and trial by "
        "default; runs in this process unless --queue is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--patient", action="append", metavar="EXTERNAL_ID", help="Only this patient (MRN)."
        )
        parser.add_argument("--trial", action="append", metavar="NCT_ID", help="Only this trial.")
        parser.add_argument(
            "--queue", action="store_true", help="Hand the work to the Celery workers."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        patients = Patient.objects.order_by("pk")
        if options["patient"]:
            patients = patients.filter(external_id__in=options["patient"])
            found = set(patients.values_list("external_id", flat=True))
            unknown = sorted(set(options["patient"]) - found)
            if unknown:
                raise CommandError(f"Unknown patient(s): {', '.join(unknown)}.")
        trial_ids = None
        if options["trial"]:
            wanted = [nct.strip().upper() for nct in options["trial"]]
            trials = dict(Trial.objects.filter(nct_id__in=wanted).values_list("nct_id", "pk"))
            unknown = sorted(set(wanted) - trials.keys())
            if unknown:
                raise CommandError(f"Unknown trial(s): {', '.join(unknown)}.")
            trial_ids = list(trials.values())
        patient_ids = list(patients.values_list("pk", flat=True))

        if options["queue"]:
            self._queue(patient_ids, trial_ids, everyone=not options["patient"])
            return

        bar = None
        if not options["no_progress"] and sys.stderr.isatty():
            bar = tqdm(total=len(patient_ids), unit=" patients", file=sys.stderr)

        def progress(count: int) -> None:
            if bar is not None:
                bar.update(count)

        try:
            if not options["patient"] and trial_ids is None:
                run = matching.match_all(progress=progress)
            elif not options["patient"] and trial_ids is not None:
                run = matching.match_trials(trial_ids, progress=progress)
            else:
                run = matching.match_patients(patient_ids, trial_ids=trial_ids, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(self.style.SUCCESS(run.summary().capitalize() + "."))
        if not options["patient"] and trial_ids is None:
            # A full re-match, as after the nightly sync: the coordinators hear of the flags.
            try:
                sent = send_flag_digests()
            except OSError as exc:  # SMTP refused or unreachable: the matches are stored
                self.stderr.write(
                    f"Flag digests not sent ({type(exc).__name__}: {exc}); they go out with "
                    "the next digest."
                )
            else:
                if sent:
                    self.stdout.write(f"Flag digests sent: {sent} email(s).")

    def _queue(self, patient_ids: list[int], trial_ids: list[int] | None, everyone: bool) -> None:
        from celery.result import AsyncResult

        from patients import tasks

        result: AsyncResult[Any]
        if everyone and trial_ids is None:
            result = tasks.match_all_task.delay()
        elif everyone and trial_ids is not None:
            result = tasks.match_trials_task.delay(trial_ids)
        else:
            result = tasks.match_chunk_task.delay(patient_ids, trial_ids)
        self.stdout.write(f"Matching queued as task {result.id}.")
