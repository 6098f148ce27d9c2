"""The audit trail of patient data: who read or changed what, and when.

Writes are logged by django-auditlog (registered in ``patients.apps``) with old and new
values. Reads are logged here, one ACCESS entry per patient shown, exported or sent, with
the purpose. The log table is append-only: database triggers (migration 0002) refuse UPDATE
and DELETE on it, and the admin shows it read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from auditlog.cid import get_cid
from auditlog.context import auditlog_value
from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models

from patients.models import Patient


class ChangeLog:
    """Write entries of one batch, saved together: what django-auditlog's signals would
    write object by object (same diff, same fields), in one INSERT.

    Used inside ``auditlog.context.disable_auditlog()`` by bulk writers such as the import.
    """

    def __init__(self, actor: Any = None) -> None:
        self.actor = actor if getattr(actor, "is_authenticated", False) else None
        self.remote_addr = request_address()
        self.entries: list[LogEntry] = []

    def created(self, instance: models.Model) -> None:
        self._add(LogEntry.Action.CREATE, instance, None, instance)

    def updated(self, old: models.Model, new: models.Model) -> None:
        self._add(LogEntry.Action.UPDATE, new, old, new)

    def deleted(self, instance: models.Model) -> None:
        self._add(LogEntry.Action.DELETE, instance, instance, None)

    def _add(
        self,
        action: int,
        instance: models.Model,
        old: models.Model | None,
        new: models.Model | None,
    ) -> None:
        changes = model_instance_diff(
            old, new, use_json_for_changes=getattr(settings, "AUDITLOG_STORE_JSON_CHANGES", False)
        )
        if not changes and action == LogEntry.Action.UPDATE:
            return
        self.entries.append(
            LogEntry(
                content_type=ContentType.objects.get_for_model(instance),
                object_pk=str(instance.pk),
                object_id=instance.pk,
                object_repr=str(instance),
                action=action,
                changes=changes,
                actor=self.actor,
                remote_addr=self.remote_addr,
                cid=get_cid(),
            )
        )

    def save(self) -> None:
        LogEntry.objects.bulk_create(self.entries, batch_size=500)
        self.entries.clear()


def request_address() -> str | None:
    """The client address of the request being served (``config.audit.AuditMiddleware`` puts
    it in django-auditlog's context); None outside a request (commands, tasks)."""
    try:
        context = auditlog_value.get()
    except LookupError:
        return None
    address = context.get("remote_addr")
    return str(address) if address else None


def record_access(
    patients: Iterable[Patient],
    *,
    actor: Any = None,
    purpose: str,
    remote_addr: str | None = None,
) -> int:
    """One ACCESS log entry per patient; returns how many were written. Without
    ``remote_addr``, the address of the request being served (``request_address``)."""
    remote_addr = remote_addr or request_address()
    content_type = ContentType.objects.get_for_model(Patient)
    user = actor if getattr(actor, "is_authenticated", False) else None
    entries = [
        LogEntry(
            content_type=content_type,
            object_pk=str(patient.pk),
            object_id=patient.pk,
            object_repr=str(patient.pk),
            action=LogEntry.Action.ACCESS,
            actor=user,
            remote_addr=remote_addr,
            additional_data={"purpose": purpose},
        )
        for patient in patients
    ]
    LogEntry.objects.bulk_create(entries, batch_size=500)
    return len(entries)


UNSTORED = "-"  # object_pk of an entry about a profile that was sent but never stored


def record_unstored_access(
    *,
    actor: Any,
    purpose: str,
    remote_addr: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One ACCESS entry for patient data read but not stored (``POST /api/v1/match/``): who,
    when, from where and why; no patient to point at and nothing identifying kept."""
    remote_addr = remote_addr or request_address()
    LogEntry.objects.create(
        content_type=ContentType.objects.get_for_model(Patient),
        object_pk=UNSTORED,
        object_id=None,
        object_repr="profile not stored",
        action=LogEntry.Action.ACCESS,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        remote_addr=remote_addr,
        additional_data={"purpose": purpose, **(detail or {})},
    )
