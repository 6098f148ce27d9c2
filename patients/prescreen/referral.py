"""A visitor's request to be contacted, with consent: the referral it writes.

``create_referral`` stores the visitor as a patient of the site nearest to them (source "web
form", external id ``WEB-<reference code>``), with the facts their answers give, computes
and stores their matches, audits the consent, and tells that site's coordinators that a
referral arrived: the email carries the reference code and a link, never a name or a health
fact. ``create_referral_unless_recent`` does so only once per contact: a request with the same
email address or phone number within ``PRESCREEN_REFERRAL_DUPLICATE_HOURS`` writes nothing and
sends nothing. Nothing here logs personal data.
"""

from __future__ import annotations

import datetime
import logging
import math
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from patients import matching
from patients.audit import record_access
from patients.models import Patient, PrescreenDailyCount, Site, Source
from patients.prescreen import guard
from patients.prescreen.questions import Answers, place, profile_from_answers
from patients.services import default_site, patient_upsert
from trials.eligibility.geo import Place, haversine_km

logger = logging.getLogger(__name__)

# No 0/O, 1/I/L: a code read out on the phone is not misheard.
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERENCE_LENGTH = 8
EXTERNAL_ID_PREFIX = "WEB-"
CONSENT_PURPOSE = "web referral consent"
DEFAULT_DUPLICATE_HOURS = 24


@dataclass(frozen=True)
class Contact:
    name: str
    email: str
    phone: str
    preferred_contact_time: str


def new_reference_code() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def nearest_site(where: Place | None) -> Site:
    """The site nearest to the visitor; the default site when either side has no location."""
    if where is not None:
        located = (
            Site.objects.filter(latitude__isnull=False, longitude__isnull=False)
            .order_by("pk")
            .values_list("pk", "latitude", "longitude")
        )
        best: tuple[float, int] | None = None
        for pk, latitude, longitude in located:
            if latitude is None or longitude is None:
                continue
            km = haversine_km(where.latitude, where.longitude, latitude, longitude)
            if math.isfinite(km) and (best is None or km < best[0]):
                best = (km, pk)
        if best is not None:
            return Site.objects.get(pk=best[1])
    return default_site()


def _digits(phone: str) -> str:
    return "".join(char for char in phone if char.isdigit())


def contact_keys(contact: Contact) -> list[str]:
    """The contact details a request is recognised by: the email address (case aside) and
    the phone number's digits (however it was written)."""
    keys = []
    if contact.email.strip():
        keys.append("email:" + contact.email.strip().lower())
    if _digits(contact.phone):
        keys.append("phone:" + _digits(contact.phone))
    return keys


def duplicate_window() -> datetime.timedelta | None:
    """How far back an earlier request with the same contact details makes a new one a
    repeat (``PRESCREEN_REFERRAL_DUPLICATE_HOURS``; 0: never)."""
    hours = float(getattr(settings, "PRESCREEN_REFERRAL_DUPLICATE_HOURS", DEFAULT_DUPLICATE_HOURS))
    return datetime.timedelta(hours=hours) if hours > 0 else None


def recent_referral_exists(contact: Contact) -> bool:
    """Whether a web referral with this email address or phone number arrived within the
    duplicate window."""
    window = duplicate_window()
    if window is None:
        return False
    recent = Patient.objects.filter(source=Source.WEB_FORM, created_at__gte=timezone.now() - window)
    email = contact.email.strip()
    if email and recent.filter(email__iexact=email).exists():
        return True
    digits = _digits(contact.phone)
    if not digits:
        return False
    # Phone numbers are stored as written: compared by their digits (the window, and the
    # referral limits, keep this to a few rows).
    phones = recent.exclude(phone="").values_list("phone", flat=True)
    return any(_digits(phone) == digits for phone in phones.iterator())


def create_referral_unless_recent(
    answers: Answers, contact: Contact, *, today: datetime.date
) -> str | None:
    """``create_referral``, unless a web referral with the same email address or phone number
    arrived within the duplicate window (or is being stored right now): then nothing is
    written and no email is sent, and None is returned.

    The earlier referral is left as it is (the new request may not even be from the same
    person), and nothing about it is returned."""
    keys = contact_keys(contact)
    with guard.contact_lock(keys) as free:
        if not free or recent_referral_exists(contact):
            logger.info("web referral: the same contact details arrived recently; not stored")
            return None
        return create_referral(answers, contact, today=today)


def create_referral(answers: Answers, contact: Contact, *, today: datetime.date) -> str:
    """Store the referral and notify the site's coordinators; returns the reference code."""
    site = nearest_site(place(answers))
    for _ in range(5):
        code = new_reference_code()
        external_id = EXTERNAL_ID_PREFIX + code
        if not Patient.objects.filter(external_id=external_id).exists():
            break
    profile = profile_from_answers(answers, external_id=external_id, today=today)
    profile.given_name = contact.name
    profile.email = contact.email
    profile.phone = contact.phone
    profile.preferred_contact_time = contact.preferred_contact_time
    profile.contact_consent_at = timezone.now()
    # The referral and its matches land together: a coordinator never finds a referral
    # without the trials it matches, and a failure leaves nothing half-written.
    with transaction.atomic():
        result = patient_upsert(profile, source=Source.WEB_FORM, site=site)
        patient = result.patient
        assert patient is not None
        record_access([patient], purpose=CONSENT_PURPOSE)
        matching.match_patients([patient.pk])
    # Stored: from here on nothing may turn this into "not sent" for the visitor. The count
    # and the email are follow-ups; a failure of either is logged, and the referral stands
    # (the dashboard lists it whether or not the email went out).
    try:
        count("referred")
    except Exception:
        logger.exception("web referral stored; its daily count failed")
    try:
        notify_coordinators(site, patient, code)
    except Exception:
        logger.exception("web referral stored; the coordinators' email failed")
    return code


def notify_coordinators(site: Site, patient: Patient, code: str) -> int:
    """One email to the site's coordinators: the reference code and a link, nothing else."""
    recipients = sorted(
        {user.email for user in site.coordinators.filter(is_active=True) if user.email}
    )
    if not recipients:
        # The reference code is the patient's identifier: the log names only the site.
        logger.warning("web referral: site %s has no coordinator email", site.code)
        return 0
    link = settings.SITE_URL.rstrip("/") + reverse(
        "admin:patients_patient_change", args=[patient.pk]
    )
    body = (
        "A new referral arrived through the public pre-screening form.\n\n"
        f"Reference code: {EXTERNAL_ID_PREFIX}{code}\n"
        f"Site: {site.name}\n"
        f"Open it in the workspace (sign-in needed): {link}\n\n"
        "The person agreed to be contacted. Their details and answers are in the workspace "
        "only; this email carries none of them on purpose.\n"
    )
    try:
        return send_mail(
            f"New web referral {EXTERNAL_ID_PREFIX}{code}",
            body,
            settings.DEFAULT_FROM_EMAIL,
            recipients,
        )
    except Exception as exc:  # noqa: BLE001  (the referral is stored; the queue shows it)
        # The error's kind only: its text and traceback may carry addresses.
        logger.warning(
            "web referral: the coordinator email for site %s could not be sent (%s)",
            site.code,
            type(exc).__name__,
        )
        return 0


def keep_counts() -> bool:
    return getattr(settings, "PRESCREEN_KEEP_ANONYMOUS", "counts") == "counts"


def count(what: str) -> None:
    """Add one to today's count of ``what`` (started, completed, referred), when counts are
    kept (``PRESCREEN_KEEP_ANONYMOUS``). Never an answer, never who."""
    if not keep_counts():
        return
    day = timezone.localdate()
    counts = PrescreenDailyCount.objects.filter(day=day)
    if counts.update(**{what: F(what) + 1}):
        return
    try:
        with transaction.atomic():
            PrescreenDailyCount.objects.create(day=day, **{what: 1})
    except IntegrityError:  # another request created the day's row first
        counts.update(**{what: F(what) + 1})
