"""Create a coordinator account for the admin (the documented first step of a deployment)."""

import getpass
import secrets
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from config import two_factor
from patients.access import COORDINATOR_GROUP, SITE_ADMIN_GROUP
from patients.models import Site
from patients.roles import ensure_groups


class Command(BaseCommand):
    help = (
        "Create a coordinator account that can log in to the admin. The password is asked "
        "for on a terminal, or generated and shown once (or written to --password-file)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--superuser", action="store_true", help="Give every permission on every site."
        )
        parser.add_argument(
            "--site",
            action="append",
            default=[],
            metavar="CODE",
            help="A site whose patients the coordinator looks after (repeat for several).",
        )
        parser.add_argument(
            "--site-admin",
            action="store_true",
            help="Also add patients, manage site members and start syncs.",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Do nothing (and succeed) when the account already exists.",
        )
        parser.add_argument(
            "--password-file",
            type=Path,
            help="Write a generated password to this file (mode 600) instead of printing it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username = options["username"]
        if user_model.objects.filter(username=username).exists():
            if options["if_missing"]:
                self.stdout.write(f"Account {username!r} already exists; left unchanged.")
                return
            raise CommandError(f"Account {username!r} already exists.")

        sites = list(Site.objects.filter(code__in=options["site"]))
        missing = sorted(set(options["site"]) - {site.code for site in sites})
        if missing:
            known = ", ".join(Site.objects.values_list("code", flat=True)) or "none yet"
            raise CommandError(f"No site with code {', '.join(missing)} (known: {known}).")
        if not sites and not options["superuser"]:
            self.stderr.write(
                "Note: the account belongs to no site yet, so it sees no patients; "
                "add it to sites under Hospital sites, or rerun with --site CODE."
            )
        user = user_model(username=username, email=options["email"], is_staff=True)
        user.is_superuser = options["superuser"]
        password = self._password(user, options["password_file"])
        user.set_password(password)
        with transaction.atomic():
            user.save()
            role = SITE_ADMIN_GROUP if options["site_admin"] else COORDINATOR_GROUP
            ensure_groups()
            user.groups.add(Group.objects.get(name=role))
            for site in sites:
                site.coordinators.add(user)
        where = f" for {', '.join(site.code for site in sites)}" if sites else ""
        self.stdout.write(self.style.SUCCESS(f"Created {role} account {username!r}{where}."))
        if two_factor.required(user):
            self.stdout.write(
                "At its first sign-in it sets up an authenticator app (two-factor sign-in); "
                "sign in soon, since until then the password alone can set it up."
            )

    def _password(self, user: Any, password_file: Path | None) -> str:
        if password_file is None and sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The two passwords differ.")
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
            return password
        password = secrets.token_urlsafe(15)
        if password_file is None:
            self.stdout.write(f"Generated password (shown once): {password}")
        else:
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.touch(mode=0o600)
            password_file.write_text(password + "\n")
            self.stdout.write(f"Generated password written to {password_file}")
        return password
