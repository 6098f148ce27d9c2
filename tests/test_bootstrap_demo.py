"""`make run` prepares a demo: an admin account, trials live or from the bundled snapshot."""

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from patients.models import Patient
from tests.fakes.ctgov_server import FakeCtgovServer, load_recorded_studies
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
    assert "importing the bundled snapshot" in text
    assert get_user_model().objects.get(username="admin").is_superuser
    assert Trial.objects.count() == 59
    assert SyncRun.objects.get().mode == SyncRun.Mode.FILE
    assert "Demo patients: 33 file(s): 33 created" in text
    assert Patient.objects.count() == 33


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

    assert "already exists; left unchanged" in out.getvalue()
    assert "0 created, 0 updated, 59 unchanged" in out.getvalue()
    assert "33 file(s): 0 created, 0 updated, 33 unchanged" in out.getvalue()
