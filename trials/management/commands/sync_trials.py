"""``manage.py sync_trials``: bring trials up to date from ClinicalTrials.gov or from files."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from celery import current_app
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from tqdm import tqdm

from trials import services
from trials.criteria import refresh_stale_criteria
from trials.ctgov.mapping import NCT_ID
from trials.models import SyncRun
from trials.signals import trials_changed
from trials.tasks import sync_trials_task


class Command(BaseCommand):
    help = (
        "Sync trials with ClinicalTrials.gov (incremental by default), or import study records "
        "from files with --from. Runs in this process unless --queue is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="List every matching record and mark trials no longer listed as removed.",
        )
        parser.add_argument(
            "--since",
            type=_date,
            help="Only records updated on or after this day (YYYY-MM-DD).",
        )
        parser.add_argument(
            "--from",
            dest="paths",
            type=Path,
            action="append",
            metavar="PATH",
            help="Import a v2 study JSON, a page, a JSON array or a folder of them (.gz too). "
            "Repeatable.",
        )
        parser.add_argument(
            "--nct",
            dest="nct_ids",
            type=_nct_id,
            action="append",
            metavar="NCT_ID",
            help="Fetch this trial's record again, whatever its update date (repeatable).",
        )
        parser.add_argument(
            "--queue", action="store_true", help="Hand the sync to the Celery workers."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["paths"] and (options["full"] or options["since"] or options["queue"]):
            raise CommandError("--from cannot be combined with --full, --since or --queue.")
        if options["nct_ids"] and (
            options["paths"] or options["full"] or options["since"] or options["queue"]
        ):
            raise CommandError("--nct cannot be combined with --from, --full, --since or --queue.")
        if options["queue"]:
            since = options["since"].isoformat() if options["since"] else None
            result = sync_trials_task.delay(full=options["full"], since=since)
            self.stdout.write(f"Sync queued as task {result.id}.")
            return

        bar = None
        if not options["no_progress"] and sys.stderr.isatty():
            bar = tqdm(unit=" records", file=sys.stderr, dynamic_ncols=True)

        def progress(run: SyncRun) -> None:
            if bar is None:
                return
            if run.total_count is not None:
                bar.total = run.total_count
            bar.n = run.fetched
            bar.set_postfix(pages=run.pages, failed=run.failed, refresh=False)
            bar.refresh()

        try:
            if options["paths"]:
                run = services.import_trial_files(paths=options["paths"], progress=progress)
            elif options["nct_ids"]:
                run = services.sync_selected_trials(options["nct_ids"])
            else:
                run = services.sync_trials(
                    full=options["full"], since=options["since"], progress=progress
                )
        except services.SyncAlreadyRunning as exc:
            raise CommandError(f"Another sync is running: {exc}. Nothing was done.") from None
        except DatabaseError as exc:
            raise CommandError(
                f"The database failed during the sync ({type(exc).__name__}). Pages committed "
                "so far are kept; the next run resumes from the last one."
            ) from None
        finally:
            if bar is not None:
                bar.close()

        for error in run.errors[:20]:
            self.stderr.write(f"  {error['record']}: {error['message']}")
        if len(run.errors) > 20:
            self.stderr.write(f"  ... {run.failed - 20} more in sync run #{run.pk}")
        if run.status != SyncRun.Status.FAILED:
            services.locate_sites()
            read = refresh_stale_criteria()
            if read:
                self.stdout.write(f"Eligibility criteria read for {read} trial(s).")
            self._match_changed_trials(options["no_progress"])
            self._send_flag_digests()
        summary = run.summary().capitalize()
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"{summary}. {run.message}")
        if run.failed:
            raise CommandError(f"{summary}. Some records could not be imported (listed above).")
        self.stdout.write(self.style.SUCCESS(summary))

    def _match_changed_trials(self, no_progress: bool) -> None:
        """Follow-up work of other apps (matching patients), here in this process."""
        bar = None
        if not no_progress and sys.stderr.isatty():
            bar = tqdm(unit=" patients", file=sys.stderr, dynamic_ncols=True)

        def progress(count: int) -> None:
            if bar is not None:
                bar.update(count)

        try:
            responses = trials_changed.send(sender=self.__class__, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        for _, summary in responses:
            if summary:
                self.stdout.write(summary)

    def _send_flag_digests(self) -> None:
        """The coordinators' digests of the flags the re-match raised, changed or cleared.

        The patients app's task, run here in this process; found by name, as the nightly sync
        task names the re-match (``trials`` imports none of the apps built on it).
        """
        task = current_app.tasks.get("patients.tasks.send_flag_digests_task")
        if task is None:
            return
        try:
            sent = task()
        except OSError as exc:  # SMTP refused or unreachable: the sync itself is done
            self.stderr.write(
                f"Flag digests not sent ({type(exc).__name__}: {exc}); they go out with the "
                "next digest."
            )
            return
        if sent:
            self.stdout.write(f"Flag digests sent: {sent} email(s).")


def _nct_id(text: str) -> str:
    nct_id = text.strip().upper()
    if not NCT_ID.match(nct_id):
        raise argparse.ArgumentTypeError(f"expected an NCT id such as NCT01234567, not {text!r}")
    return nct_id


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, not {text!r}") from None
