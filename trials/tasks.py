"""Celery tasks of the trials app: thin wrappers around ``trials.services``."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from celery import current_app, shared_task
from django.db import transaction

from trials import services
from trials.criteria import refresh_stale_criteria

logger = logging.getLogger(__name__)


@shared_task(name="trials.tasks.sync_trials_task")
def sync_trials_task(full: bool = False, since: str | None = None) -> dict[str, Any]:
    """Sync with ClinicalTrials.gov (the nightly job, or on demand).

    Safe to redeliver: a second delivery while the first still runs is refused by the sync
    lock, and one after a crash resumes from the last committed page.
    """
    try:
        run = services.sync_trials(
            full=full, since=datetime.date.fromisoformat(since) if since else None
        )
    except services.SyncAlreadyRunning as exc:
        logger.info("Sync not started: %s", exc)
        return {"status": "skipped", "reason": str(exc)}
    read = 0
    if run.status == run.Status.SUCCEEDED:
        services.locate_sites()
        read = refresh_stale_criteria()
        # Every patient against every open trial again: statuses, criteria and ages moved.
        current_app.send_task("patients.tasks.match_all_task")
    return {"run": run.pk, "status": run.status, "summary": run.summary(), "criteria_read": read}


@shared_task(name="trials.tasks.refresh_criteria_task")
def refresh_criteria_task() -> int:
    """Read the eligibility of every trial whose stored reading is stale."""
    return refresh_stale_criteria()


def queue_trial_matching(trial_ids: list[int]) -> None:
    """Recompute these trials' matches once the current transaction commits."""
    ids = list(trial_ids)
    transaction.on_commit(
        lambda: current_app.send_task("patients.tasks.match_trials_task", args=[ids])
    )
