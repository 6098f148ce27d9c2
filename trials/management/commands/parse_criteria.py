"""``manage.py parse_criteria``: read trials' eligibility into criteria and classify them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.criteria import refresh_stale_criteria, trial_refresh_criteria
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Read eligibility criteria and classify trials whose stored reading is stale (new or "
        "changed records, a new engine version). Coordinators' corrections are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trial", help="Only this NCT id (read again even if current).")
        parser.add_argument("--all", action="store_true", help="Read every trial again.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["trial"]:
            trial = Trial.objects.filter(nct_id=options["trial"]).first()
            if trial is None:
                raise CommandError(f"No trial {options['trial']!r}.")
            trial_refresh_criteria(trial)
            self.stdout.write(f"{trial.nct_id}: {trial.criteria.count()} criteria.")
            return
        if options["all"]:
            Trial.objects.update(criteria_engine_version="")
        count = refresh_stale_criteria()
        self.stdout.write(self.style.SUCCESS(f"Criteria read for {count} trial(s)."))
