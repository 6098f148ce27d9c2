"""The first coordinator account is created by a command and can use the admin."""

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from tests.two_factor import enrol


@pytest.mark.django_db
def test_create_coordinator_writes_a_generated_password(tmp_path: Path) -> None:
    password_file = tmp_path / "secret" / "password.txt"

    call_command(
        "create_coordinator",
        "maria",
        email="maria@example.org",
        password_file=password_file,
        stdout=StringIO(),
    )

    user = get_user_model().objects.get(username="maria")
    password = password_file.read_text().strip()
    assert user.is_staff
    assert not user.is_superuser
    assert user.check_password(password)
    assert len(password) >= 16
    assert password_file.stat().st_mode & 0o077 == 0


@pytest.mark.django_db
def test_existing_account_is_refused_or_left_alone(tmp_path: Path) -> None:
    call_command("create_coordinator", "maria", password_file=tmp_path / "p", stdout=StringIO())

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_coordinator", "maria", password_file=tmp_path / "q", stdout=StringIO())

    out = StringIO()
    call_command("create_coordinator", "maria", if_missing=True, stdout=out)
    assert "left unchanged" in out.getvalue()


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_login_and_coordinator_gets_in(
    client: Client, tmp_path: Path
) -> None:
    assert client.get("/admin/")["Location"].startswith("/admin/login/")

    password_file = tmp_path / "p"
    call_command("create_coordinator", "maria", password_file=password_file, stdout=StringIO())
    # Through the sign-in form, as a person would (lockout protection sees the request).
    answer = client.post(
        "/admin/login/?next=/admin/",
        {"username": "maria", "password": password_file.read_text().strip()},
    )

    assert answer.status_code == 302, answer.content[:500]
    # First the authenticator app (two-factor sign-in), then the workspace.
    assert client.get("/admin/")["Location"] == "/admin/two-factor/?next=/admin/"
    enrol(client)
    assert client.get("/admin/").status_code == 200
