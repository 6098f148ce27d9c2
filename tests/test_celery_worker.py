"""A real worker executes tasks sent through the configured broker (Redis in CI)."""

from typing import Any

import pytest

from config.celery import app as celery_app
from config.celery import ping


@pytest.mark.django_db(transaction=True)
def test_worker_executes_a_task_and_its_result_is_seen(celery_worker: str) -> None:
    result = ping.apply_async(queue=celery_worker)

    assert result.get(timeout=30) == "pong"
    assert result.successful()


def test_tasks_are_configured_for_safe_redelivery() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_soft_time_limit < conf.task_time_limit


def test_tasks_can_wait_for_the_transaction_to_commit() -> None:
    assert hasattr(ping, "delay_on_commit")


def test_worker_processes_yield_to_the_web_app(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.signals import worker_process_init

    increments: list[int] = []
    monkeypatch.setattr("config.celery.os.nice", increments.append)
    settings.CELERY_WORKER_NICE = 10
    worker_process_init.send(sender=None)
    settings.CELERY_WORKER_NICE = 0
    worker_process_init.send(sender=None)
    assert increments == [10]
