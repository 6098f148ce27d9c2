"""The sync as Celery runs it: real workers, a worker killed mid-sync, the nightly schedule."""

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from tests.fakes.ctgov_server import FakeCtgovServer, nct_id_of
from tests.processes import kill, process_env, start_worker, wait_for
from trials.ctgov.mapping import content_hash
from trials.locks import exclusive_lock
from trials.models import SyncRun, Trial, TrialVersion
from trials.services import SYNC_LOCK
from trials.tasks import sync_trials_task


@pytest.fixture
def registry_settings(settings: Any, ctgov: FakeCtgovServer) -> None:
    settings.CTGOV_BASE_URL = ctgov.base_url
    settings.CTGOV_SYNC_QUERY = ""
    settings.CTGOV_PAGE_SIZE = 10
    settings.CTGOV_MIN_REQUEST_INTERVAL = 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("registry_settings")
def test_worker_runs_the_sync_task(celery_worker: str) -> None:
    result = sync_trials_task.apply_async(kwargs={"full": True}, queue=celery_worker)

    outcome = result.get(timeout=60)

    assert outcome["status"] == SyncRun.Status.SUCCEEDED
    assert Trial.objects.count() == 59


@pytest.fixture
def lock_held_elsewhere() -> Iterator[None]:
    """The sync lock, held by another thread (its own database connection)."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with exclusive_lock(SYNC_LOCK) as held:
                assert held
                taken.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(30)
    try:
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("registry_settings", "lock_held_elsewhere")
def test_task_delivered_while_a_sync_runs_steps_aside() -> None:
    outcome = sync_trials_task.apply().get()

    assert outcome["status"] == "skipped"
    assert not SyncRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_sync_then_restarted_reaches_the_same_end_state(
    recorded_studies: list[dict[str, Any]], tmp_path: Path
) -> None:
    queue = f"test-kill-{uuid.uuid4().hex}"
    with FakeCtgovServer(recorded_studies) as server:
        server.delay = 0.3
        environment = process_env(
            CTGOV_BASE_URL=server.base_url,
            CTGOV_SYNC_QUERY="",
            CTGOV_PAGE_SIZE="5",
            CTGOV_MIN_REQUEST_INTERVAL="0",
        )
        first = start_worker(queue, environment, tmp_path / "worker-1.log")
        try:
            sync_trials_task.apply_async(kwargs={"full": True}, queue=queue)
            wait_for(
                lambda: SyncRun.objects.filter(pages__gte=3).exists(),
                timeout=90,
                what="three committed pages",
            )
        finally:
            kill(first)
        killed = SyncRun.objects.get()
        assert killed.status == SyncRun.Status.RUNNING
        assert 3 <= killed.pages < 12

        second = start_worker(queue, environment, tmp_path / "worker-2.log")
        try:
            sync_trials_task.apply_async(kwargs={"full": True}, queue=queue)
            wait_for(
                lambda: SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).exists(),
                timeout=120,
                what="the restarted sync to finish",
            )
        finally:
            kill(second)

    resumed = SyncRun.objects.get(status=SyncRun.Status.SUCCEEDED)
    killed.refresh_from_db()
    assert killed.status == SyncRun.Status.INTERRUPTED
    assert resumed.resumed_from_id == killed.pk
    assert resumed.pages == 12 - killed.pages
    # The same end state as one uninterrupted run: every record once, as the registry has it.
    expected = {nct_id_of(study): content_hash(study) for study in recorded_studies}
    assert dict(Trial.objects.values_list("nct_id", "content_hash")) == expected
    assert TrialVersion.objects.count() == len(expected)
    assert killed.created + resumed.created == len(expected)


def test_the_nightly_schedule_runs_the_incremental_sync() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["nightly-ctgov-sync"]

    assert entry["task"] in celery_app.tasks
    assert entry["task"] == sync_trials_task.name
    assert entry["schedule"].hour == {2}
    assert entry["schedule"].minute == {30}
    assert "kwargs" not in entry  # incremental by default
