"""``manage.py send_flag_digests``: email each coordinator the flag changes at their sites."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from patients.notify import send_flag_digests


class Command(BaseCommand):
    help = (
        "Send each coordinator one email listing the new, changed and cleared trial flags of "
        "their sites not yet notified (as after the nightly re-match). Safe to run again: "
        "what was sent is not sent twice."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sent = send_flag_digests()
        except OSError as exc:  # SMTP refused or unreachable
            raise CommandError(
                f"The digests could not be sent ({type(exc).__name__}: {exc}). Nothing was "
                "marked as notified: the next run sends them."
            ) from None
        self.stdout.write(f"{sent} flag digest email(s) sent.")
