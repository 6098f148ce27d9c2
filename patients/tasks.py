"""Celery tasks of the patients app: matching, fanned out in chunks so workers share it, and
the purge of expired sessions (which hold the public form's answers)."""

from __future__ import annotations

import logging
from importlib import import_module
from pathlib import Path
from typing import Any

from celery import chord, group, shared_task
from django.conf import settings
from django.db import transaction

from patients import matching
from patients.models import Patient, Site
from patients.services import import_patient_files
from trials.models import Trial

logger = logging.getLogger(__name__)


@shared_task(name="patients.tasks.match_chunk_task")
def match_chunk_task(patient_ids: list[int], trial_ids: list[int] | None = None) -> dict[str, Any]:
    """One chunk of patients against the candidate trials (or only ``trial_ids``).

    Idempotent: a chunk's matches are replaced in one transaction, so a redelivered task
    writes the same rows again.
    """
    run = matching.match_patients(patient_ids, trial_ids=trial_ids)
    return {"patients": run.patients, "evaluated": run.evaluated, "flagged": run.flagged}


def _fan_out(trial_ids: list[int] | None, then: Any = None) -> int:
    """Chunks of patients to the workers; ``then`` (a signature) runs once all are done."""
    ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
    chunks = list(matching.chunks(ids))
    tasks = group(match_chunk_task.s(chunk, trial_ids) for chunk in chunks)
    if chunks and then is not None:
        chord(tasks)(then)
    elif chunks:
        tasks.apply_async()
    elif then is not None:
        then.apply_async()
    return len(chunks)


@shared_task(name="patients.tasks.match_patients_task")
def match_patients_task(patient_ids: list[int]) -> dict[str, Any]:
    """These patients' facts changed: only their matches are recomputed."""
    return match_chunk_task(patient_ids)


@shared_task(name="patients.tasks.match_trials_task")
def match_trials_task(trial_ids: list[int]) -> int:
    """These trials' inputs changed: every patient against them, in chunks."""
    chunks = _fan_out(trial_ids)
    Trial.objects.filter(pk__in=trial_ids).update(needs_evaluation=False)
    return chunks


@shared_task(name="patients.tasks.match_all_task")
def match_all_task() -> int:
    """Every patient against every candidate trial (after each nightly sync), in chunks."""
    matching.remove_non_candidate_matches()
    Trial.objects.filter(needs_evaluation=True).update(needs_evaluation=False)
    return _fan_out(None, then=send_flag_digests_task.si())


@shared_task(name="patients.tasks.send_flag_digests_task")
def send_flag_digests_task() -> int:
    """After a full re-match: each coordinator's digest of new or changed flags."""
    from patients.notify import send_flag_digests

    return send_flag_digests()


@shared_task(name="patients.tasks.import_patients_task")
def import_patients_task(paths: list[str], site_code: str | None = None) -> dict[str, Any]:
    """``import_patients --queue``: import files the worker can read, then match them."""
    site = Site.objects.filter(code=site_code).first() if site_code else None
    report = import_patient_files([Path(path) for path in paths], site=site)
    if report.changed_patient_ids:
        match_patients_task.delay(report.changed_patient_ids)
    return {"summary": report.summary(), "problems": len(report.problems)}


def queue_patient_matching(patient_ids: list[int]) -> None:
    """Recompute these patients' matches once the current transaction commits."""
    ids = list(patient_ids)
    transaction.on_commit(lambda: match_patients_task.delay(ids))


@shared_task(name="patients.tasks.clear_expired_sessions_task")
def clear_expired_sessions_task() -> None:
    """Delete expired sessions (what ``manage.py clearsessions`` does), hourly from beat:
    a public-form visitor's answers do not outlive their session's expiry by more than that."""
    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()
    logger.info("expired sessions deleted")
