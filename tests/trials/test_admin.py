"""Coordinators see trials and sync runs in the admin, and can start a sync."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.fakes.ctgov_server import FakeCtgovServer
from tests.processes import wait_for
from tests.trials.conftest import CTGOV_DATA
from trials import services
from trials.models import SyncRun


@pytest.fixture
def admin_client_with_trials(admin_client: Client) -> Client:
    run = services.import_trial_files(paths=[CTGOV_DATA / "v2", CTGOV_DATA / "v2-partial"])
    run.add_error("NCT00000000", "something was wrong with this record")
    run.save()
    return admin_client


@pytest.mark.django_db
def test_trial_pages(admin_client_with_trials: Client) -> None:
    listing = admin_client_with_trials.get("/admin/trials/trial/", {"q": "durvalumab"})
    assert listing.status_code == 200
    assert "NCT04592913" in listing.content.decode()

    detail = admin_client_with_trials.get(
        "/admin/trials/trial/" + str(_trial_pk("NCT04592913")) + "/change/"
    )
    page = detail.content.decode()
    assert detail.status_code == 200
    assert "https://clinicaltrials.gov/study/NCT04592913" in page
    assert "Patients with peritoneal dissemination or distant metastasis." in page
    assert "Memorial Sloan Kettering Cancer Center" in page


@pytest.mark.django_db
def test_sync_run_pages_show_counts_and_errors(admin_client_with_trials: Client) -> None:
    run = SyncRun.objects.get()

    listing = admin_client_with_trials.get("/admin/trials/syncrun/")
    detail = admin_client_with_trials.get(f"/admin/trials/syncrun/{run.pk}/change/")

    assert listing.status_code == 200
    assert "Sync now (incremental)" in listing.content.decode()
    assert detail.status_code == 200
    assert "something was wrong with this record" in detail.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_queue_worker")
def test_sync_now_button_runs_a_sync_in_the_background(
    admin_client: Client, settings: Any, ctgov: FakeCtgovServer
) -> None:
    settings.CTGOV_BASE_URL = ctgov.base_url
    settings.CTGOV_SYNC_QUERY = ""
    settings.CTGOV_MIN_REQUEST_INTERVAL = 0

    response = admin_client.post("/admin/trials/syncrun/sync-now/", {"mode": "full"}, follow=True)

    assert "Full sync queued" in response.content.decode()
    wait_for(
        lambda: SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).exists(),
        timeout=60,
        what="the queued sync",
    )
    assert SyncRun.objects.get().mode == SyncRun.Mode.FULL


@pytest.mark.django_db
def test_sync_now_needs_a_post_and_the_permission(client: Client) -> None:
    staff = User.objects.create_user("viewer", password="x" * 20, is_staff=True)
    client.force_login(staff)

    assert client.get("/admin/trials/syncrun/sync-now/").status_code == 403
    assert client.post("/admin/trials/syncrun/sync-now/").status_code == 403
    assert not SyncRun.objects.exists()


def _trial_pk(nct_id: str) -> int:
    from trials.models import Trial

    return Trial.objects.get(nct_id=nct_id).pk
