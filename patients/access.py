"""Who may see which patients: coordinators see their sites' patients, superusers all.

Every admin page, action, export and API view that shows patient data narrows its queryset
through these functions, so the rule lives in one place. Trials are public registry data and
are not narrowed; what links a trial to patients (matches, reviews, flags) is.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db.models import Model, Q, QuerySet

from patients.models import Patient, Site

M = TypeVar("M", bound=Model)

COORDINATOR_GROUP = "coordinator"
SITE_ADMIN_GROUP = "site admin"


def site_ids(user: Any) -> frozenset[int] | None:
    """The sites whose patients ``user`` may see; None means every site (superuser)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return frozenset()
    if user.is_superuser:
        return None
    cached = getattr(user, "_coordinator_site_ids", None)
    if cached is None:
        cached = frozenset(Site.objects.filter(coordinators=user).values_list("pk", flat=True))
        user._coordinator_site_ids = cached  # per request: the user object lives that long
    return cached


def sees_all(user: Any) -> bool:
    return site_ids(user) is None


def narrow(queryset: QuerySet[M], user: Any, *, via: str = "patient__site") -> QuerySet[M]:
    """``queryset`` limited to rows of the user's sites; ``via`` is the lookup to the site."""
    allowed = site_ids(user)
    if allowed is None:
        return queryset
    return queryset.filter(**{f"{via}__in": allowed})


def patients_for(user: Any, queryset: QuerySet[Patient] | None = None) -> QuerySet[Patient]:
    return narrow(queryset if queryset is not None else Patient.objects.all(), user, via="site")


def sites_for(user: Any) -> QuerySet[Site]:
    allowed = site_ids(user)
    return Site.objects.all() if allowed is None else Site.objects.filter(pk__in=allowed)


def manageable_staff(user: Any) -> QuerySet[Any]:
    """The staff accounts ``user`` may place in or take out of their sites: every staff
    account for a superuser; otherwise the staff of the user's own sites, and staff accounts
    of no site yet (new ones, waiting to join), superusers excepted. Another site's staff are
    never among them."""
    staff = get_user_model().objects.filter(is_staff=True)
    allowed = site_ids(user)
    if allowed is None:
        return staff
    return staff.filter(
        Q(coordinator_sites__in=allowed) | Q(coordinator_sites__isnull=True, is_superuser=False)
    ).distinct()


def can_see_patient(user: Any, patient: Patient) -> bool:
    allowed = site_ids(user)
    return allowed is None or patient.site_id in allowed
