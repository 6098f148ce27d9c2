"""Coordinator email digests of new, changed and cleared flags.

``send_flag_digests`` runs after each full re-match (the nightly Celery chord, the in-process
``sync_trials`` command) and on demand (``manage.py send_flag_digests``). Each run:

1. claims every flag event not yet notified, by stamping ``notified_at`` in the transaction
   that decides what to send, so that a second run (or one running beside it) sends nothing
   twice;
2. reduces each (patient, trial) pair's events to what changed over the period: a flag that
   appeared and went away again before anyone was told is left out;
3. sends every active staff member with an email address who coordinates a site ONE email
   listing that period's changes at their sites (text and HTML);
4. records the patients each recipient was sent in the audit trail.

If sending fails the transaction rolls back: the events stay pending for the next run (a
recipient whose email had already gone out before the failure may then get it twice).

Events of sites nobody can be told about (no coordinator with an email address) are stamped
all the same, and counted in the log: the flags stay visible in the dashboard and the review
queue, and a coordinator who joins later is not sent a backlog of stale changes.

What the email says about a patient is limited by ``NOTIFY_PHI_FIELDS`` (default: the MRN
only; "name" and "age" may be allowed). The log carries counts only, never patient data.
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from patients.audit import record_access
from patients.dashboard import match_page_path, verdict_label
from patients.models import FlagEvent, Patient, Site
from trials.models import Trial

logger = logging.getLogger(__name__)

# What a digest may say about a patient beyond the trial, when the setting allows it.
PHI_FIELDS = ("mrn", "name", "age")
DEFAULT_PHI_FIELDS = ("mrn",)
SUBJECT = "Trial flags at your sites: {new} new, {changed} changed, {cleared} cleared"


@dataclass(frozen=True)
class FlagChange:
    """What became of one pair's flag over the period the digest covers."""

    patient_id: int
    trial_id: int
    kind: str  # FlagEvent.Kind: new, changed or cleared
    verdict: str  # now ("" when cleared)
    previous_verdict: str  # before the period ("" when new)
    at: datetime.datetime  # the last event


def net_changes(events: Iterable[FlagEvent]) -> list[FlagChange]:
    """Each pair's events (oldest first) reduced to the change from before the first to after
    the last; pairs that ended as they started are left out."""
    first: dict[tuple[int, int], FlagEvent] = {}
    last: dict[tuple[int, int], FlagEvent] = {}
    for event in events:
        pair = (event.patient_id, event.trial_id)
        first.setdefault(pair, event)
        last[pair] = event
    changes = []
    for pair, opening in first.items():
        closing = last[pair]
        before = "" if opening.kind == FlagEvent.Kind.NEW else opening.previous_verdict
        after = "" if closing.kind == FlagEvent.Kind.CLEARED else closing.verdict
        was_flagged = opening.kind != FlagEvent.Kind.NEW
        is_flagged = closing.kind != FlagEvent.Kind.CLEARED
        if was_flagged and is_flagged:
            if before == after:
                continue
            kind = FlagEvent.Kind.CHANGED
        elif is_flagged:
            kind = FlagEvent.Kind.NEW
        elif was_flagged:
            kind = FlagEvent.Kind.CLEARED
        else:
            continue  # flagged and cleared again within the period
        changes.append(FlagChange(pair[0], pair[1], kind, after, before, closing.at))
    return changes


def phi_fields() -> frozenset[str]:
    """The patient fields the digest may show: the setting's, never any other."""
    wanted = getattr(settings, "NOTIFY_PHI_FIELDS", DEFAULT_PHI_FIELDS)
    return frozenset(field for field in wanted if field in PHI_FIELDS)


def send_flag_digests() -> int:
    """Send each coordinator one digest of the not yet notified flag events of their sites;
    returns the number of emails sent."""
    now = timezone.now()
    with transaction.atomic():
        # The claim comes first: it takes the write lock (SQLite) or the rows' locks
        # (PostgreSQL), so a digest running beside this one waits and then finds none.
        claimed = FlagEvent.objects.filter(notified_at__isnull=True).update(notified_at=now)
        if not claimed:
            return 0
        events = list(
            FlagEvent.objects.filter(notified_at=now)
            .order_by("at", "pk")
            .only("patient_id", "trial_id", "kind", "verdict", "previous_verdict", "at")
        )
        changes = net_changes(events)
        patients = _patients({change.patient_id for change in changes})
        trials = Trial.objects.only("pk", "nct_id", "brief_title", "official_title").in_bulk(
            {change.trial_id for change in changes}
        )
        by_site: dict[int, list[FlagChange]] = defaultdict(list)
        for change in changes:
            patient = patients.get(change.patient_id)
            if patient is not None and change.trial_id in trials:
                by_site[patient.site_id].append(change)
        recipients = _recipients(set(by_site))
        messages = []
        told_sites: set[int] = set()
        for user, site_list in recipients:
            mine = [site for site in site_list if site.pk in by_site]
            told_sites.update(site.pk for site in mine)
            digest = [
                (site, sorted(by_site[site.pk], key=_order(patients, trials))) for site in mine
            ]
            messages.append(_message(user, digest, patients, trials))
            sent_ids = {c.patient_id for _, site_changes in digest for c in site_changes}
            record_access(
                [patients[pk] for pk in sorted(sent_ids)],
                actor=user,
                purpose="email digest",
            )
        if messages:
            get_connection().send_messages(messages)
    untold = sum(len(items) for site_id, items in by_site.items() if site_id not in told_sites)
    logger.info(
        "Flag digests: %d email(s) sent for %d flag change(s) from %d event(s)",
        len(messages),
        len(changes) - untold,
        claimed,
    )
    if untold:
        logger.warning(
            "Flag digests: %d flag change(s) at %d site(s) without a coordinator with an "
            "email address were not sent (marked as notified)",
            untold,
            sum(1 for site_id in by_site if site_id not in told_sites),
        )
    return len(messages)


def _patients(ids: set[int]) -> dict[int, Patient]:
    fields = ["pk", "site", "external_id"]
    allowed = phi_fields()
    if "name" in allowed:
        fields += ["given_name", "family_name"]
    if "age" in allowed:
        fields.append("birth_date")
    return Patient.objects.only(*fields).in_bulk(ids)


def _recipients(site_ids: set[int]) -> list[tuple[Any, list[Site]]]:
    """Each active staff member with an email address who coordinates one of these sites,
    with those of their sites (superusers too, but only for the sites they belong to)."""
    if not site_ids:
        return []
    memberships = Site.coordinators.through.objects.filter(
        site_id__in=site_ids,
        user__is_active=True,
        user__is_staff=True,
    ).exclude(user__email="")
    sites_of: dict[int, list[int]] = defaultdict(list)
    for user_id, site_id in memberships.values_list("user_id", "site_id"):
        sites_of[user_id].append(site_id)
    users = get_user_model().objects.in_bulk(list(sites_of))
    sites = Site.objects.in_bulk(site_ids)
    return [
        (
            users[user_id],
            sorted((sites[pk] for pk in site_pks), key=lambda site: site.name),
        )
        for user_id, site_pks in sorted(sites_of.items())
    ]


def _order(patients: dict[int, Patient], trials: dict[int, Trial]) -> Any:
    kinds = [FlagEvent.Kind.NEW, FlagEvent.Kind.CHANGED, FlagEvent.Kind.CLEARED]
    return lambda change: (
        kinds.index(change.kind),
        patients[change.patient_id].external_id,
        trials[change.trial_id].nct_id,
    )


def _message(
    user: Any,
    digest: list[tuple[Site, list[FlagChange]]],
    patients: dict[int, Patient],
    trials: dict[int, Trial],
) -> EmailMultiAlternatives:
    allowed = phi_fields()
    base = settings.SITE_URL.rstrip("/")
    today = timezone.localdate()
    counts = dict.fromkeys(FlagEvent.Kind.values, 0)
    sections = []
    for site, changes in digest:
        rows = []
        for change in changes:
            counts[change.kind] += 1
            patient, trial = patients[change.patient_id], trials[change.trial_id]
            rows.append(
                {
                    "kind": change.kind,
                    "what": _describe(change),
                    "patient": _patient_label(patient, allowed, today),
                    "nct_id": trial.nct_id,
                    "title": trial.title,
                    "verdict": verdict_label(change.verdict) if change.verdict else "",
                    "url": base + match_page_path(change.patient_id, change.trial_id),
                }
            )
        sections.append({"site": site.name, "rows": rows})
    context = {
        "user": user,
        "sections": sections,
        "counts": counts,
        "dashboard_url": base + reverse("admin:index"),
    }
    message = EmailMultiAlternatives(
        subject=SUBJECT.format(**counts),
        body=render_to_string("email/flag_digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )
    message.attach_alternative(render_to_string("email/flag_digest.html", context), "text/html")
    return message


def _describe(change: FlagChange) -> str:
    if change.kind == FlagEvent.Kind.NEW:
        return f"New flag: {verdict_label(change.verdict).lower()}"
    if change.kind == FlagEvent.Kind.CHANGED:
        return (
            f"Flag changed: {verdict_label(change.previous_verdict).lower()} -> "
            f"{verdict_label(change.verdict).lower()}"
        )
    return f"Flag cleared (was {verdict_label(change.previous_verdict).lower()})"


def _patient_label(patient: Patient, allowed: frozenset[str], today: datetime.date) -> str:
    parts = []
    if "mrn" in allowed:
        parts.append(f"MRN {patient.external_id}")
    if "name" in allowed and patient.full_name:
        parts.append(patient.full_name)
    if "age" in allowed and patient.birth_date:
        born = patient.birth_date
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        parts.append(f"age {age}")
    return ", ".join(parts) or f"patient record {patient.pk}"
