"""Prepare the embedded-defaults demo that ``make run`` starts: accounts and data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from patients.matching import match_all
from patients.services import default_site, import_patient_files
from trials import services
from trials.criteria import refresh_stale_criteria
from trials.models import SyncRun

FHIR_DATA = Path(__file__).resolve().parents[2] / "data" / "fhir"
DEMO_PATIENTS = [
    *sorted((FHIR_DATA / "examples").glob("EX*.json")),
    FHIR_DATA / "demo",
]
# The demo site coordinator: sees the demo patients (imported to the default site) only.
DEMO_COORDINATOR = "coordinator"


class Command(BaseCommand):
    help = (
        "Create the demo accounts (once): a superuser and a coordinator of the demo site. Load "
        "trials (live from ClinicalTrials.gov when it answers within a few seconds, else the "
        "bundled snapshot) and the demo patients, and print how to log in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="Where the web app runs."
        )
        parser.add_argument("--offline", action="store_true", help="Do not try the live registry.")

    def handle(self, *args: Any, **options: Any) -> None:
        admin_password = settings.VAR_DIR / "admin-password.txt"
        coordinator_password = settings.VAR_DIR / "coordinator-password.txt"
        call_command(
            "create_coordinator",
            "admin",
            superuser=True,
            if_missing=True,
            password_file=admin_password,
            stdout=self.stdout,
        )
        site = default_site()
        call_command(
            "create_coordinator",
            DEMO_COORDINATOR,
            site=[site.code],
            if_missing=True,
            password_file=coordinator_password,
            stdout=self.stdout,
        )
        self._load_trials(offline=options["offline"])
        services.locate_sites()
        read = refresh_stale_criteria()
        self.stdout.write(f"Eligibility criteria read for {read} trial(s).")
        self._load_patients()
        self.stdout.write(f"Matches: {match_all().summary()}.")
        base = options["url"].rstrip("/")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nSuperuser (all sites): {base}/admin/  user: admin  "
                f"password: {_password(admin_password)}\n"
                f"Site coordinator:      {base}/admin/  user: {DEMO_COORDINATOR}  "
                f"password: {_password(coordinator_password)}  (site {site.code!r})\n"
                f"Public form:           {base}/prescreen/\n"
                f"Health:                {base}/healthz\n"
            )
        )
        self.stdout.write(_two_factor_note())

    def _load_patients(self) -> None:
        """The example bundles and the synthetic demo patients (no real person)."""
        report = import_patient_files(DEMO_PATIENTS)
        self.stdout.write(f"Demo patients: {report.summary()}")

    def _load_trials(self, *, offline: bool) -> None:
        client = services.default_client()
        if not offline and client.is_reachable(timeout=3):
            self.stdout.write(f"ClinicalTrials.gov answers at {client.base_url}: syncing live.")
            try:
                run = services.sync_trials(client=client)
            except services.SyncAlreadyRunning as exc:
                self.stdout.write(f"A sync is already running ({exc}); using what is held.")
                return
            self.stdout.write(run.summary())
            if run.status == SyncRun.Status.SUCCEEDED:
                return
            self.stdout.write("The live sync failed; importing the bundled snapshot instead.")
        else:
            self.stdout.write(
                "ClinicalTrials.gov is not reachable from here: importing the bundled snapshot "
                "of recorded real records (trials/data/ctgov/)."
            )
        try:
            run = services.import_trial_files(paths=services.bundled_snapshot_paths())
        except services.SyncAlreadyRunning as exc:
            self.stdout.write(f"A sync is already running ({exc}); using what is held.")
            return
        self.stdout.write(run.summary())


def _two_factor_note() -> str:
    from config import two_factor

    if two_factor.waived():
        return (
            "Two-factor sign-in: waived for this local demo (TWO_FACTOR_DEBUG_WAIVER=1, which "
            "only DEBUG=1 accepts); a deployment asks every account for a code from an "
            "authenticator app."
        )
    return (
        "Two-factor sign-in: each account sets up an authenticator app (TOTP) at its first "
        "sign-in, from a QR code the workspace shows; for a demo with passwords alone, run it "
        "with TWO_FACTOR_DEBUG_WAIVER=1 (DEBUG=1 only)."
    )


def _password(password_file: Path) -> str:
    """The generated password, or a hint when the account predates the file."""
    return password_file.read_text().strip() if password_file.exists() else "(set by you)"
