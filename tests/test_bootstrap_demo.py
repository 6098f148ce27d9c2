"""`make run` prepares a demo: a superuser and a coordinator of the demo site, trials live or
from the bundled snapshot, the demo patients matched."""

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from patients.access import COORDINATOR_GROUP, patients_for
from patients.models import Patient, Site
from tests.fakes.ctgov_server import FakeCtgovServer, load_recorded_studies
from tests.two_factor import enrol
from trials.models import SyncRun, Trial
from trials.services import bundled_snapshot_paths

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_settings(settings: Any, tmp_path: Path) -> Any:
    settings.VAR_DIR = tmp_path
    settings.CTGOV_SYNC_QUERY = ""
    settings.CTGOV_MIN_REQUEST_INTERVAL = 0
    settings.CTGOV_MAX_ATTEMPTS = 2
    return settings


def test_offline_loads_the_bundled_snapshot_and_prints_the_login(demo_settings: Any) -> None:
    demo_settings.CTGOV_BASE_URL = "http://127.0.0.1:9/api/v2"  # nothing listens there
    out = StringIO()

    call_command("bootstrap_demo", url="http://127.0.0.1:8123", stdout=out)

    text = out.getvalue()
    password = (demo_settings.VAR_DIR / "admin-password.txt").read_text().strip()
    assert f"http://127.0.0.1:8123/admin/  user: admin  password: {password}" in text
    coordinator_password = (demo_settings.VAR_DIR / "coordinator-password.txt").read_text()
    assert (
        f"http://127.0.0.1:8123/admin/  user: coordinator  password: "
        f"{coordinator_password.strip()}  (site 'default')"
    ) in text
    assert "importing the bundled snapshot" in text
    assert get_user_model().objects.get(username="admin").is_superuser
    assert Trial.objects.count() == 59
    assert SyncRun.objects.get().mode == SyncRun.Mode.FILE
    assert "Demo patients: 33 file(s): 33 created" in text
    assert Patient.objects.count() == 33


def test_the_demo_coordinator_signs_in_and_looks_after_the_demo_patients(
    demo_settings: Any,
) -> None:
    """As ``make run`` starts it: DEBUG on and two-factor sign-in waived for the demo."""
    demo_settings.DEBUG = True
    demo_settings.TWO_FACTOR_DEBUG_WAIVER = True
    demo_settings.CTGOV_BASE_URL = "http://127.0.0.1:9/api/v2"
    out = StringIO()
    call_command("bootstrap_demo", stdout=out)
    assert "Two-factor sign-in: waived for this local demo" in out.getvalue()
    password = (demo_settings.VAR_DIR / "coordinator-password.txt").read_text().strip()
    assert (demo_settings.VAR_DIR / "coordinator-password.txt").stat().st_mode & 0o077 == 0

    coordinator = get_user_model().objects.get(username="coordinator")
    assert coordinator.is_staff
    assert not coordinator.is_superuser
    assert list(coordinator.groups.values_list("name", flat=True)) == [COORDINATOR_GROUP]
    assert list(Site.objects.filter(coordinators=coordinator).values_list("code", flat=True)) == [
        "default"
    ]
    assert patients_for(coordinator).count() == Patient.objects.count() == 33
    # Through the sign-in form, as a person would (lockout protection sees the request).
    client = Client()
    answer = client.post(
        "/admin/login/?next=/admin/", {"username": "coordinator", "password": password}
    )
    assert answer.status_code == 302, answer.content[:500]
    assert client.get("/admin/").status_code == 200


def test_without_the_waiver_the_demo_accounts_enrol_at_their_first_sign_in(
    demo_settings: Any,
) -> None:
    demo_settings.CTGOV_BASE_URL = "http://127.0.0.1:9/api/v2"
    out = StringIO()
    call_command("bootstrap_demo", stdout=out)
    assert "each account sets up an authenticator app" in out.getvalue()
    password = (demo_settings.VAR_DIR / "admin-password.txt").read_text().strip()

    client = Client()
    client.post("/admin/login/?next=/admin/", {"username": "admin", "password": password})

    assert client.get("/admin/")["Location"] == "/admin/two-factor/?next=/admin/"
    enrol(client)
    assert client.get("/admin/").status_code == 200


def test_syncs_live_when_the_registry_answers(demo_settings: Any) -> None:
    studies = load_recorded_studies(*bundled_snapshot_paths())[:12]
    with FakeCtgovServer(studies) as server:
        demo_settings.CTGOV_BASE_URL = server.base_url
        out = StringIO()
        call_command("bootstrap_demo", stdout=out)

    assert "syncing live" in out.getvalue()
    assert Trial.objects.count() == 12
    assert SyncRun.objects.get().mode == SyncRun.Mode.INCREMENTAL


def test_running_it_again_changes_nothing(demo_settings: Any) -> None:
    demo_settings.CTGOV_BASE_URL = "http://127.0.0.1:9/api/v2"
    call_command("bootstrap_demo", stdout=StringIO())
    out = StringIO()

    call_command("bootstrap_demo", stdout=out)

    assert "'admin' already exists; left unchanged" in out.getvalue()
    assert "'coordinator' already exists; left unchanged" in out.getvalue()
    assert get_user_model().objects.count() == 2
    assert "0 created, 0 updated, 59 unchanged" in out.getvalue()
    assert "33 file(s): 0 created, 0 updated, 33 unchanged" in out.getvalue()
