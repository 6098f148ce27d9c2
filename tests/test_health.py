"""/healthz tells whether this instance can reach what it needs, without revealing details."""

import datetime

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from trials.models import SyncRun


@pytest.fixture
def unreachable_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")


def recent_sync(hours_ago: float) -> None:
    finished = timezone.now() - datetime.timedelta(hours=hours_ago)
    SyncRun.objects.create(
        mode=SyncRun.Mode.INCREMENTAL,
        status=SyncRun.Status.SUCCEEDED,
        started_at=finished - datetime.timedelta(minutes=5),
        finished_at=finished,
    )


@pytest.mark.django_db
def test_healthy_instance_answers_ok(client: Client) -> None:
    recent_sync(hours_ago=2)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True}
    assert body["checks"]["last_sync"]["ok"] is True
    assert 7100 < body["checks"]["last_sync"]["age_seconds"] < 7300


@pytest.mark.django_db
@pytest.mark.parametrize("hours_ago", [None, 48])
def test_missing_or_stale_sync_degrades_but_keeps_serving(
    client: Client, hours_ago: float | None
) -> None:
    if hours_ago is not None:
        recent_sync(hours_ago)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["last_sync"]["ok"] is False


@pytest.mark.django_db
@pytest.mark.usefixtures("unreachable_broker")
def test_unreachable_broker_fails_the_check_without_details(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["broker"]["ok"] is False
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_unreachable_database_fails_the_check(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("config.health.connection.cursor", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "OperationalError"}


def test_only_get_is_allowed(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_answers_whatever_host_the_load_balancer_uses(client: Client) -> None:
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")

    assert response.status_code == 200


@pytest.mark.django_db
def test_a_queue_backlog_degrades_and_gives_only_a_count(client: Client, settings) -> None:
    recent_sync(hours_ago=1)
    assert client.get("/healthz").json()["checks"]["queue"]["ok"] is True

    settings.HEALTH_QUEUE_BACKLOG = -1  # any count is too many
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    queue = response.json()["checks"]["queue"]
    assert set(queue) == {"ok", "waiting"}
    assert queue["ok"] is False
    assert isinstance(queue["waiting"], int)


@pytest.mark.django_db
def test_refreshing_one_trial_is_not_a_registry_sync(client: Client) -> None:
    SyncRun.objects.create(
        mode=SyncRun.Mode.SELECTED, status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    assert client.get("/healthz").json()["checks"]["last_sync"]["ok"] is False
