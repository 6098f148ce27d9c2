"""The coordinator dashboard shown as the admin index.

What it shows, each part in a fixed number of queries whatever the number of patients:

* the funnel: patients -> surgical candidates -> flagged -> contacted -> consented -> enrolled,
  counted over the sites the user may see (``patients.access``);
* the flags raised or changed since the last successful registry sync, still flagged now,
  each linked to its match page (patients identified by MRN only; each view is audited);
* the last registry syncs with their counts and errors;
* the trials whose criteria need a coordinator: corrections to re-check after the eligibility
  text changed, and criteria of the trials being matched that the engine could not read.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse

from config.addresses import client_ip
from patients.access import narrow, patients_for, site_ids, sites_for
from patients.audit import record_access
from patients.matching import candidate_trials
from patients.models import FlagEvent, Match, Patient, Review
from trials.models import Criterion, SyncRun, Trial

# How many rows each list shows; the totals say how many there are in all.
NEW_FLAGS_SHOWN = 20
SYNC_RUNS_SHOWN = 5
REVIEW_TRIALS_SHOWN = 10
SYNC_ERRORS_SHOWN = 3

# The review statuses a patient has reached when any of their reviews is in one of them:
# a consented pair was contacted first, an enrolled one consented.
CONTACTED = (Review.Status.CONTACTED, Review.Status.CONSENTED, Review.Status.ENROLLED)
CONSENTED = (Review.Status.CONSENTED, Review.Status.ENROLLED)
ENROLLED = (Review.Status.ENROLLED,)


def match_page_path(patient_id: int, trial_id: int) -> str:
    """The admin page of one (patient, trial) pair; the one place its address is built."""
    return f"{reverse('admin:index')}patients/match/pair/{patient_id}/{trial_id}/"


@dataclass(frozen=True)
class FunnelStage:
    key: str
    label: str
    count: int


@dataclass(frozen=True)
class NewFlag:
    patient_id: int
    mrn: str
    site_code: str
    nct_id: str
    trial_title: str
    kind: str  # FlagEvent.Kind
    verdict: str
    previous_verdict: str
    at: datetime.datetime
    url: str

    @property
    def kind_label(self) -> str:
        return FlagEvent.Kind(self.kind).label

    @property
    def verdict_label(self) -> str:
        return verdict_label(self.verdict)

    @property
    def previous_verdict_label(self) -> str:
        return verdict_label(self.previous_verdict)


@dataclass(frozen=True)
class SyncRunRow:
    run: SyncRun
    url: str | None
    error_count: int
    errors: list[dict[str, str]]


@dataclass(frozen=True)
class ReviewTrial:
    nct_id: str
    title: str
    url: str | None
    curation_needs_review: bool
    corrections_to_check: int
    orphaned_corrections: int
    unread: int
    criteria: int


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's part of the admin index context."""
    user = request.user
    last_sync = (
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .only("pk", "finished_at")
        .first()
    )
    since = last_sync.finished_at if last_sync else None
    flags, flag_total = new_flags(user, since)
    if flags:
        record_access(
            _patients({flag.patient_id for flag in flags}),
            actor=user,
            purpose="dashboard",
            remote_addr=client_ip(request),
        )
    context: dict[str, Any] = {
        "funnel": funnel(user),
        "new_flags": flags,
        "new_flags_total": flag_total,
        "new_flags_cap": NEW_FLAGS_COUNT_CAP,
        "new_flags_since": since,
        "sees_all_sites": site_ids(user) is None,
        "sites": [] if site_ids(user) is None else [site.name for site in sites_for(user)],
    }
    if user.has_perm("trials.view_syncrun"):
        context["sync_runs"] = recent_sync_runs()
    if user.has_perm("trials.view_trial"):
        context["review_trials"], context["review_trials_total"] = trials_needing_review()
        context["review_trials_list_url"] = (
            reverse("admin:trials_trial_changelist") + "?curation_needs_review__exact=1"
        )
    return {"dashboard": context}


# --- the funnel -------------------------------------------------------------------------------


def funnel(user: Any) -> list[FunnelStage]:
    """How many of the user's patients reached each stage, in one query."""
    labels = (
        ("patients", "Patients"),
        ("surgical", "Surgical candidates"),
        ("flagged", "Flagged for a trial"),
        ("contacted", "Contacted"),
        ("consented", "Consented"),
        ("enrolled", "Enrolled"),
    )
    if site_ids(user) == frozenset():
        return [FunnelStage(key, label, 0) for key, label in labels]
    # Flagged on the patient's present facts (no join to the trial: a trial's own change
    # is re-matched within minutes, and the join made this count cost seconds at scale).
    flagged = Match.objects.filter(
        patient=OuterRef("pk"), flagged=True, patient_facts_at=OuterRef("facts_changed_at")
    )
    counts = patients_for(user).aggregate(
        patients=Count("pk"),
        surgical=Count("pk", filter=Q(surgical_candidate=True)),
        flagged=Count("pk", filter=Q(Exists(flagged))),
        contacted=Count("pk", filter=Q(Exists(_reviews_in(CONTACTED)))),
        consented=Count("pk", filter=Q(Exists(_reviews_in(CONSENTED)))),
        enrolled=Count("pk", filter=Q(Exists(_reviews_in(ENROLLED)))),
    )
    return [FunnelStage(key, label, counts[key] or 0) for key, label in labels]


def _reviews_in(statuses: Sequence[str]) -> QuerySet[Review]:
    return Review.objects.filter(patient=OuterRef("pk"), status__in=statuses)


# --- flags since the last sync ------------------------------------------------------------------


NEW_FLAGS_COUNT_CAP = 1000


def new_flags(user: Any, since: datetime.datetime | None) -> tuple[list[NewFlag], int]:
    """The pairs flagged or changed since ``since`` (every time when None) and still flagged
    on the patient's present facts, newest first, one row per pair; and how many such pairs
    there are, counted among the newest ``NEW_FLAGS_COUNT_CAP`` events (a first night flags
    every pair at once: 156,000 events for 10,000 patients, whose exact count cost seconds)."""
    if site_ids(user) == frozenset():
        return [], 0
    events = narrow(
        FlagEvent.objects.filter(kind__in=(FlagEvent.Kind.NEW, FlagEvent.Kind.CHANGED)), user
    )
    if since is not None:
        events = events.filter(at__gte=since)
    newest = list(
        events.order_by("-at", "-pk")
        .select_related("patient__site", "trial")
        .only(
            "patient_id",
            "trial_id",
            "kind",
            "verdict",
            "previous_verdict",
            "at",
            "patient__external_id",
            "patient__site__code",
            "trial__nct_id",
            "trial__brief_title",
            "trial__official_title",
        )[: NEW_FLAGS_COUNT_CAP + 1]
    )
    if not newest:
        return [], 0
    # Which of those pairs are still flagged on the patient's present facts: one query.
    still_flagged = set(
        Match.objects.filter(
            flagged=True,
            patient_facts_at=F("patient__facts_changed_at"),
            patient_id__in={event.patient_id for event in newest},
            trial_id__in={event.trial_id for event in newest},
        ).values_list("patient_id", "trial_id")
    )
    # A pair flagged and then changed since the sync has two events: its latest tells.
    listed: dict[tuple[int, int], NewFlag] = {}
    for event in newest:
        pair = (event.patient_id, event.trial_id)
        if pair in listed or pair not in still_flagged:
            continue
        listed[pair] = NewFlag(
            patient_id=event.patient_id,
            mrn=event.patient.external_id,
            site_code=event.patient.site.code,
            nct_id=event.trial.nct_id,
            trial_title=event.trial.title,
            kind=event.kind,
            verdict=event.verdict,
            previous_verdict=event.previous_verdict,
            at=event.at,
            url=match_page_path(event.patient_id, event.trial_id),
        )
    # Past the cap, the page says "more than NEW_FLAGS_COUNT_CAP".
    total = NEW_FLAGS_COUNT_CAP + 1 if len(newest) > NEW_FLAGS_COUNT_CAP else len(listed)
    return list(listed.values())[:NEW_FLAGS_SHOWN], total


def _patients(ids: set[int]) -> list[Patient]:
    """Stand-ins carrying only the primary key, which is all the audit entry needs."""
    return [Patient(pk=pk) for pk in sorted(ids)]


def verdict_label(verdict: str) -> str:
    """A verdict as the coordinator reads it ("Possibly eligible")."""
    try:
        return str(Match.Verdict(verdict).label)
    except ValueError:
        return verdict or "unknown"


# --- registry syncs -----------------------------------------------------------------------------


def recent_sync_runs() -> list[SyncRunRow]:
    runs = SyncRun.objects.order_by("-started_at", "-pk").defer("checkpoint")[:SYNC_RUNS_SHOWN]
    return [
        SyncRunRow(
            run=run,
            url=reverse("admin:trials_syncrun_change", args=[run.pk]),
            error_count=max(run.failed, len(run.errors)),
            errors=[
                {"record": str(item.get("record", "")), "message": str(item.get("message", ""))}
                for item in run.errors[:SYNC_ERRORS_SHOWN]
                if isinstance(item, dict)
            ],
        )
        for run in runs
    ]


# --- criteria needing a coordinator -----------------------------------------------------------


def _unread(prefix: str = "") -> Q:
    """Criteria the engine did not read: no constraints of their own and none corrected in
    (headings excepted: their items are criteria of their own)."""
    return Q(**{f"{prefix}header": False}) & (
        Q(**{f"{prefix}corrected_constraints__isnull": True, f"{prefix}constraints": []})
        | Q(**{f"{prefix}corrected_constraints": []})
    )


def trials_needing_review() -> tuple[list[ReviewTrial], int]:
    """Trials with corrections to re-check (any trial), or with criteria the engine could not
    read among the trials being matched; the most urgent first, and how many in all."""
    unread = Criterion.objects.filter(_unread(), trial=OuterRef("pk"))
    to_check = Criterion.objects.filter(trial=OuterRef("pk"), needs_review=True)
    wanted = (
        Trial.objects.filter(
            Q(curation_needs_review=True)
            | Q(Exists(to_check))
            | (Q(pk__in=candidate_trials().values("pk")) & Q(Exists(unread)))
        )
        .order_by()
        .values("pk")
    )
    total = Trial.objects.filter(pk__in=wanted).count()
    if not total:
        return [], 0
    trials = (
        Trial.objects.filter(pk__in=wanted)
        .annotate(
            to_check=Count("criteria", filter=Q(criteria__needs_review=True)),
            unread=Count("criteria", filter=_unread("criteria__")),
            criteria_count=Count("criteria", filter=Q(criteria__header=False)),
        )
        .only(
            "pk",
            "nct_id",
            "brief_title",
            "official_title",
            "curation_needs_review",
            "orphaned_corrections",
        )
        .order_by("-curation_needs_review", "-to_check", "-unread", "nct_id")[:REVIEW_TRIALS_SHOWN]
    )
    rows = [
        ReviewTrial(
            nct_id=trial.nct_id,
            title=trial.title,
            url=reverse("admin:trials_trial_change", args=[trial.pk]),
            curation_needs_review=trial.curation_needs_review,
            corrections_to_check=trial.to_check,  # type: ignore[attr-defined]
            orphaned_corrections=len(trial.orphaned_corrections or []),
            unread=trial.unread,  # type: ignore[attr-defined]
            criteria=trial.criteria_count,  # type: ignore[attr-defined]
        )
        for trial in trials
    ]
    return rows, total
