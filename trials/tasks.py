"""Celery tasks of the trials app: thin wrappers around ``trials.services``."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from celery import shared_task

from trials import services

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
    return {"run": run.pk, "status": run.status, "summary": run.summary()}
