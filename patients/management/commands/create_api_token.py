"""Create a REST API token for an account (shown once), list tokens, or revoke one."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from config.api_auth import may_use_api
from patients.models import ApiToken


class Command(BaseCommand):
    help = (
        "Create an API token acting as USERNAME (the system sees what that account sees). "
        "The key is printed once and stored only hashed. --revoke PREFIX revokes a token; "
        "--list shows the tokens."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--name", default="", help="What uses the token (e.g. EHR bridge).")
        parser.add_argument(
            "--revoke", metavar="PREFIX", help="Revoke the token whose key starts with PREFIX."
        )
        parser.add_argument("--list", action="store_true", help="List tokens (never the keys).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["revoke"]:
            self._revoke(options["revoke"])
            return
        if options["list"]:
            tokens = ApiToken.objects.select_related("user")
            if options["username"]:
                tokens = tokens.filter(user__username=options["username"])
            for token in tokens:
                state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked else "active"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(
                    f"{token.prefix}  {token.user.username}  {token.name!r}  {state}  "
                    f"last used {used}"
                )
            return
        if not options["username"]:
            raise CommandError("Give the USERNAME the token acts as (or --revoke / --list).")
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None or not may_use_api(user):
            # A key works only while its account is active staff: refused now, not later.
            raise CommandError(f"No active staff account {options['username']!r}.")
        token, key = ApiToken.issue(user, options["name"] or "API token")
        self.stderr.write(
            f"Token {token.prefix}… for {user.username}: shown once, store it now "
            f'(send it as "Authorization: Token <key>").'
        )
        self.stdout.write(key)

    def _revoke(self, prefix: str) -> None:
        if len(prefix) < 6:
            raise CommandError("Give at least the first 6 characters of the key.")
        matches = [
            token
            for token in ApiToken.objects.filter(
                prefix__startswith=prefix[: ApiToken.PREFIX_LENGTH]
            )
            if prefix.startswith(token.prefix) or token.prefix.startswith(prefix)
        ]
        active = [token for token in matches if not token.revoked]
        if not matches:
            raise CommandError(f"No token starts with {prefix!r}.")
        if len(active) > 1:
            raise CommandError(f"{len(active)} active tokens start with {prefix!r}: give more.")
        if not active:
            self.stdout.write(f"Token {matches[0].prefix} was already revoked.")
            return
        token = active[0]
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        self.stdout.write(f"Revoked token {token.prefix} ({token.user.username}, {token.name}).")
