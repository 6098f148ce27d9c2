"""Prepare the embedded-defaults demo that ``make run`` starts: an admin account and data."""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the demo admin account (once) and print where and how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="Where the web app runs."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password_file = settings.VAR_DIR / "admin-password.txt"
        call_command(
            "create_coordinator",
            "admin",
            superuser=True,
            if_missing=True,
            password_file=password_file,
            stdout=self.stdout,
        )
        password = password_file.read_text().strip() if password_file.exists() else "(set by you)"
        base = options["url"].rstrip("/")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nCoordinator admin: {base}/admin/  user: admin  password: {password}\n"
                f"Health:            {base}/healthz\n"
            )
        )
