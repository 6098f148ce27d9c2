"""The coordinators' review queue and match page (registered on the admin site).

The queue is the ``Match`` changelist: the (patient, trial) pairs of the user's sites, flagged
ones first, with the follow-up status of each pair read from ``Review`` in the same query.
The match page is keyed on the pair, not on ``Match.pk`` (every re-evaluation replaces the
rows): /admin/patients/match/pair/<patient id>/<trial id>/. It explains the verdict criterion
by criterion and carries the workflow (``patients.workflow``). Every page and export of
patient data here is narrowed through ``patients.access`` and recorded with ``record_access``.
"""

from __future__ import annotations

import csv
import datetime
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import (
    Exists,
    F,
    Q,
    QuerySet,
    Subquery,
)
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator, smart_split, unescape_string_literal

from config import spreadsheet
from config.addresses import client_ip
from config.api_platform import parse_id
from patients import access, workflow
from patients.audit import record_access
from patients.facts import has_primary_cancer, newest, with_facts
from patients.matching import MATCHER_VERSION, criteria_of
from patients.models import (
    MATCH_LIST_FIELDS,
    QUEUE_RANK,
    Match,
    Patient,
    Review,
    ReviewNote,
    ReviewTransition,
)
from trials.eligibility.geo import haversine_km, km_to_miles
from trials.models import OPEN_STATUSES, Criterion, Trial, TrialSite

Verdict = Match.Verdict
Status = Review.Status

# The queue's order: flagged pairs first (by score, so the eligible ones, which meet every
# criterion read, lead), then possible, then eligible, then ineligible (shown only through the
# verdict filter); within each, the highest score first.
VERDICT_RANK = QUEUE_RANK  # the expression the queue index is built on
QUEUE_ORDER = (
    VERDICT_RANK.asc(),
    F("score").desc(),
    "patient_id",
    "trial_id",
)
CHANGED_BADGE = '<span class="ws-badge ws-badge--changed">△ changed since review</span>'
STALE_BADGE = (
    '<span class="ws-badge ws-badge--stale" title="Inputs changed since the evaluation; '
    're-evaluation pending">⟳ stale</span>'
)
# The queue counts its rows up to this many (an exact count of millions costs more than the
# page itself: past 20 pages, the filters are the way on); the CSV export takes at most
# EXPORT_CAP rows at once.
COUNT_CAP = 1000
EXPORT_CAP = 10_000
# A search word matching more patients or trials than this is joined in SQL, not as a list.
SEARCH_ID_LIMIT = 1000
# Bulk workflow actions move pairs one by one (each is its own recorded transition).
BULK_LIMIT = 200
DISTANCE_BUCKETS = (50, 100, 250)


def pair_url(patient_id: int, trial_id: int) -> str:
    return reverse("admin:patients_match_pair", args=[patient_id, trial_id])


def distance_text(km: float | None) -> str:
    if km is None:
        return "unknown"
    return f"{km:,.0f} km ({km_to_miles(km):,.0f} mi)"


def _review_of_row(match: Match) -> Review | None:
    """The pair's review as the queue's annotations carry it (no query)."""
    status = getattr(match, "review_status", None)
    if status is None:
        return None
    return Review(
        status=status,
        verdict_seen=getattr(match, "review_verdict_seen", "") or "",
        flagged_seen=getattr(match, "review_flagged_seen", None),
    )


def is_current(match: Match, patient: Patient, trial: Trial) -> bool:
    return (
        match.engine_version == MATCHER_VERSION
        and match.patient_facts_at == patient.facts_changed_at
        and match.trial_inputs_at == trial.matching_inputs_at
    )


class QueuePaginator(Paginator):
    """Counts up to ``COUNT_CAP`` rows: the queue says "more than 1000" beyond that."""

    @cached_property
    def count(self) -> int:
        queryset: QuerySet[Match] = self.object_list  # type: ignore[assignment]
        return queryset.order_by().values("pk")[: COUNT_CAP + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > COUNT_CAP


# --- filters -------------------------------------------------------------------------------


class VerdictFilter(admin.SimpleListFilter):
    title = "verdict"
    parameter_name = "verdict"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*Verdict.choices, (self.ALL, "Any verdict")]

    def choices(self, changelist: Any) -> Iterator[Any]:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Eligible or possible",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        value = self.value()
        if value is None:
            return queryset.exclude(verdict=Verdict.INELIGIBLE)
        if value in Verdict.values:
            return queryset.filter(verdict=value)
        return queryset


class ReviewStatusFilter(admin.SimpleListFilter):
    title = "review status"
    parameter_name = "review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        value = self.value()
        if value == Status.NEW:  # no review yet, or one that never moved
            return queryset.filter(~Exists(workflow.reviews_of_pair().exclude(status=Status.NEW)))
        if value in Status.values:
            return queryset.filter(Exists(workflow.reviews_of_pair().filter(status=value)))
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("me", "Assigned to me"), ("nobody", "Unassigned")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        reviews = workflow.reviews_of_pair()
        if self.value() == "me":
            return queryset.filter(Exists(reviews.filter(assignee=request.user.pk)))
        if self.value() == "nobody":
            return queryset.filter(~Exists(reviews.filter(assignee__isnull=False)))
        return queryset


class SiteFilter(admin.SimpleListFilter):
    title = "site"
    parameter_name = "site"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(site.pk), site.name) for site in access.sites_for(request.user)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        value = self.value()
        if value is None:
            return queryset
        site_id = parse_id(value)
        if site_id is None:
            return queryset.none()
        return queryset.filter(patient__site_id=site_id)  # narrowed already: AND


class TrialFilter(admin.SimpleListFilter):
    """The open preoperative-immunotherapy trials (the ones that flag) as a list, any other
    trial by its NCT id in the field below the list."""

    title = "trial"
    parameter_name = "trial"
    template = "admin/patients/match/trial_filter.html"

    def __init__(self, request: HttpRequest, params: Any, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        # What the NCT id field submits besides the id itself: the other filters and search.
        self.other_params = [
            (key, value)
            for key, values in request.GET.lists()
            if key not in (self.parameter_name, "p")
            for value in values
        ]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        trials = (
            Trial.objects.open_to_enrolment()
            .filter(gastric_preop_immunotherapy=True)
            .order_by("nct_id")
            .values_list("nct_id", "brief_title", "official_title")
        )
        return [
            (nct_id, f"{nct_id} {Truncator(brief or official).chars(40)}")
            for nct_id, brief, official in trials
        ]

    def value(self) -> str | None:
        value = super().value()
        return value.strip().upper() if value else None

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        value = self.value()
        return queryset.filter(trial__nct_id=value) if value else queryset


class SurgicalCandidateFilter(admin.SimpleListFilter):
    title = "surgical candidacy"
    parameter_name = "surgical"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Surgical candidate"), ("no", "Not a candidate"), ("unknown", "Unknown")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        value = self.value()
        if value == "unknown":
            return queryset.filter(patient__surgical_candidate__isnull=True)
        if value in ("yes", "no"):
            return queryset.filter(patient__surgical_candidate=value == "yes")
        return queryset


class DistanceFilter(admin.SimpleListFilter):
    title = "distance to the nearest open site"
    parameter_name = "distance"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            *((str(km), f"≤ {km} km ({km_to_miles(km):.0f} mi)") for km in DISTANCE_BUCKETS),
            ("far", f"> {DISTANCE_BUCKETS[-1]} km"),
            ("unknown", "Unknown"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Match]) -> QuerySet[Match]:
        value = self.value()
        if value == "unknown":
            return queryset.filter(distance_km__isnull=True)
        if value == "far":
            return queryset.filter(distance_km__gt=DISTANCE_BUCKETS[-1])
        if value in {str(km) for km in DISTANCE_BUCKETS}:
            return queryset.filter(distance_km__lte=int(value))
        return queryset


# --- the match page's forms -----------------------------------------------------------------


class MoveForm(forms.Form):
    to_status = forms.ChoiceField(label="Move to", choices=Status.choices)
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required for not eligible and declined.",
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional, kept with the pair's notes.",
    )

    def __init__(self, *args: Any, allowed: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every status validates (a stale or forged choice gets the workflow's own message);
        # only the allowed ones are offered.
        self.allowed = [(value, Status(value).label) for value in allowed]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        to_status = cleaned.get("to_status")
        if to_status in workflow.NEEDS_REASON and not (cleaned.get("reason") or "").strip():
            self.add_error(
                "reason",
                f"Say why the patient is {Status(to_status).label.lower()} (a reason is required).",
            )
        return cleaned


class NoteForm(forms.Form):
    text = forms.CharField(label="Note", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


# --- the match page's content ---------------------------------------------------------------


@dataclass
class Fact:
    label: str
    value: str
    date: datetime.date | None = None


@dataclass
class CheckItem:
    kind: str  # inclusion / exclusion
    text: str
    category: str
    outcome: str  # met / not_met / unknown
    reason: str
    missing: list[str]
    parsed: bool

    @property
    def state(self) -> str:
        """pass / fail / unknown: whether the criterion counts for or against the patient."""
        if self.outcome == "unknown":
            return "unknown"
        satisfied = (self.kind == "inclusion") == (self.outcome == "met")
        return "pass" if satisfied else "fail"

    @property
    def symbol(self) -> str:
        return {"pass": "✓", "fail": "✗", "unknown": "?"}[self.state]

    @property
    def word(self) -> str:
        if self.state == "unknown":
            return "unknown" if self.parsed else "needs review"
        if self.kind == "exclusion":
            return "does not apply" if self.state == "pass" else "applies: excludes"
        return "met" if self.state == "pass" else "not met"


@dataclass
class Checklist:
    inclusion: list[CheckItem] = field(default_factory=list)
    exclusion: list[CheckItem] = field(default_factory=list)
    # "To find out": each missing fact with the criteria it decides; criteria not read.
    to_find_out: list[tuple[str, list[CheckItem]]] = field(default_factory=list)
    other_unknown: list[CheckItem] = field(default_factory=list)
    needs_review: list[CheckItem] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        items = self.inclusion + self.exclusion
        return {
            state: sum(i.state == state for i in items) for state in ("pass", "fail", "unknown")
        }


def checklist(match: Match, criteria: list[Criterion]) -> Checklist:
    result = Checklist()
    by_fact: dict[str, list[CheckItem]] = {fact: [] for fact in match.unknown_facts}
    for listed in criteria_of(match, criteria):
        item = CheckItem(
            kind=listed["type"],
            text=listed["text"],
            category=listed["category"],
            outcome=listed["outcome"],
            reason=listed["reason"],
            missing=list(listed["missing"]),
            parsed=listed["parsed"],
        )
        (result.exclusion if item.kind == "exclusion" else result.inclusion).append(item)
        if item.state != "unknown":
            continue
        if not item.parsed:
            result.needs_review.append(item)
        elif item.missing:
            for fact in item.missing:
                by_fact.setdefault(fact, []).append(item)
        else:
            result.other_unknown.append(item)
    result.to_find_out = list(by_fact.items())
    return result


def _stage_text(patient: Patient, context: str) -> Fact | None:
    rows = [s for s in patient.stages.all() if s.context == context]
    found = {
        category: newest(s for s in rows if s.category == category)
        for category in ("T", "N", "M", "stage", "CY")
    }
    present = [row for row in found.values() if row is not None]
    if not present:
        return None
    prefix = "c" if context == "clinical" else "p"
    tnm = " ".join(prefix + row.value for key, row in found.items() if row and key in "TNM")
    parts = [tnm] if tnm else []
    if found["stage"]:
        parts.append(f"stage {found['stage'].value}")
    if found["CY"]:
        parts.append(found["CY"].value)
    dates = [row.observed_on for row in present if row.observed_on]
    label = "Clinical stage (cTNM)" if context == "clinical" else "Pathological stage (pTNM)"
    return Fact(label, ", ".join(parts), max(dates) if dates else None)


def patient_summary(patient: Patient, today: datetime.date) -> dict[str, Any]:
    """What the coordinator needs of the patient beside the checklist (``with_facts`` loaded)."""
    born = patient.birth_date
    age = (
        today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if born
        else None
    )
    facts: list[Fact] = []
    if has_primary_cancer(patient):
        primary = patient.primary_cancer
        diagnosis = ", ".join(
            part
            for part in (
                primary.get_site_display(),
                f"Siewert {primary.siewert_type}" if primary.siewert_type else "",
                primary.get_histology_display(),
            )
            if part
        )
        facts.append(
            Fact(
                "Diagnosis",
                diagnosis or "recorded without site or histology",
                primary.observed_on,
            )
        )
    else:
        facts.append(Fact("Diagnosis", "not recorded"))
    for context in ("clinical", "pathological"):
        stage = _stage_text(patient, context)
        if stage is not None:
            facts.append(stage)
    if not any(f.label.startswith("Clinical stage") for f in facts):
        facts.append(Fact("Clinical stage (cTNM)", "not recorded"))
    metastases = list(patient.metastases.all())
    if metastases:
        facts.append(
            Fact(
                "Metastases",
                ", ".join(sorted({m.get_location_display() for m in metastases})),
                max((m.observed_on for m in metastases if m.observed_on), default=None),
            )
        )
    performance = newest(patient.performance.all())
    if performance is not None:
        facts.append(
            Fact(
                "Performance status",
                str(performance),
                performance.observed_on,
            )
        )
    else:
        facts.append(Fact("Performance status (ECOG)", "not recorded"))
    labs: dict[str, Any] = {}
    for lab in patient.labs.all():
        held = labs.get(lab.analyte)
        if held is None or newest([held, lab]) is lab:
            labs[lab.analyte] = lab
    lab_rows = [
        Fact(
            lab.get_analyte_display(),
            f"{lab.original_value:g} {lab.original_unit}"
            + (f" (ULN {lab.original_uln:g})" if lab.original_uln is not None else ""),
            lab.observed_on,
        )
        for lab in sorted(labs.values(), key=lambda lab: lab.get_analyte_display().lower())
    ]
    candidacy = {True: "Yes", False: "No", None: "Unknown"}[patient.surgical_candidate]
    return {
        "mrn": patient.external_id,
        "name": patient.full_name,
        "age": age,
        "sex": patient.get_sex_display() or "not recorded",
        "site": patient.site.name,
        "facts": facts,
        "labs": lab_rows,
        "surgical_candidate": candidacy,
        "surgical_candidate_reason": patient.surgical_candidate_reason,
    }


@dataclass
class NearestSite:
    site: TrialSite
    km: float

    @property
    def distance(self) -> str:
        return distance_text(self.km)


def nearest_open_site(trial: Trial, patient: Patient) -> NearestSite | None:
    """The trial's nearest open site to the patient, as the matcher measures it: sites with a
    status count only when open; without any status, every located site counts."""
    if patient.latitude is None or patient.longitude is None:
        return None
    located = [
        site
        for site in trial.sites.all()
        if site.latitude is not None and site.longitude is not None
    ]
    with_status = [site for site in located if site.status]
    chosen = [s for s in with_status if s.status in OPEN_STATUSES] if with_status else located
    best: NearestSite | None = None
    for site in chosen:
        assert site.latitude is not None
        assert site.longitude is not None
        km = haversine_km(patient.latitude, patient.longitude, site.latitude, site.longitude)
        if math.isfinite(km) and (best is None or km < best.km):
            best = NearestSite(site, km)
    return best


def phase_text(phases: Any) -> str:
    if not phases:
        return "not given"
    names = {"NA": "not applicable", "EARLY_PHASE1": "early phase 1"}
    return ", ".join(
        names.get(str(p), str(p).replace("PHASE", "phase ")) for p in phases
    ).capitalize()


def trial_summary(trial: Trial, patient: Patient) -> dict[str, Any]:
    classification = []
    if trial.classified_gastric:
        classification.append("gastric / GEJ cancer")
    if trial.classified_immunotherapy:
        classification.append("immunotherapy")
    if trial.classified_preoperative:
        classification.append("preoperative")
    overruled = trial.classification_override is not None
    return {
        "nct_id": trial.nct_id,
        "title": trial.title,
        "acronym": trial.acronym,
        "phase": phase_text(trial.phases),
        "status": trial.get_overall_status_display() or "not given",
        "is_open": trial.is_open,
        "preop_immunotherapy": trial.gastric_preop_immunotherapy,
        "classification": ", ".join(classification)
        or "none of gastric, immunotherapy, preoperative",
        "classification_by": "the coordinator's classification" if overruled else "engine",
        "registry_url": trial.get_registry_url(),
        "nearest": nearest_open_site(trial, patient),
        "patient_located": patient.latitude is not None,
    }


# --- the admin ---------------------------------------------------------------------------


@admin.register(Match)
class ReviewQueueAdmin(admin.ModelAdmin):
    """The review queue (the Match changelist) and the match page."""

    change_list_template = "admin/patients/match/change_list.html"
    list_display = (
        "flag",
        "mrn",
        "trial_link",
        "verdict_link",
        "score_display",
        "distance",
        "review_status",
        "assignee",
        "attention",
    )
    list_display_links = None
    list_filter = (
        VerdictFilter,
        "flagged",
        ReviewStatusFilter,
        AssigneeFilter,
        SiteFilter,
        TrialFilter,
        SurgicalCandidateFilter,
        DistanceFilter,
    )
    list_select_related = ("patient", "patient__site", "trial")
    search_fields = (
        "patient__external_id",
        "patient__given_name",
        "patient__family_name",
        "trial__nct_id",
    )
    search_help_text = "MRN, patient name or NCT id"
    sortable_by = ("flag", "score_display", "distance")
    list_per_page = 50
    list_max_show_all = 500
    # Millions of rows: no unfiltered count, no facet counts.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = QueuePaginator
    actions = ("assign_to_me", "mark_contacted", "export_csv")

    # -- permissions: matches are derived data, read only; the workflow moves reviews --------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("patients.change_review")

    def has_add_note_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("patients.add_reviewnote")

    # -- the queue -------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Match]:
        reviews = workflow.reviews_of_pair()
        queryset = (
            Match.objects.select_related("patient", "patient__site", "trial")
            .only(
                *MATCH_LIST_FIELDS,
                "evaluated_at",
                "patient__external_id",
                "patient__given_name",
                "patient__family_name",
                "patient__facts_changed_at",
                "patient__surgical_candidate",
                "patient__site__code",
                "trial__nct_id",
                "trial__brief_title",
                "trial__official_title",
                "trial__matching_inputs_at",
            )
            .annotate(
                review_status=Subquery(reviews.values("status")[:1]),
                review_assignee=Subquery(reviews.values("assignee__username")[:1]),
                review_verdict_seen=Subquery(reviews.values("verdict_seen")[:1]),
                review_flagged_seen=Subquery(reviews.values("flagged_seen")[:1]),
            )
        )
        return access.narrow(queryset, request.user)

    def get_ordering(self, request: HttpRequest) -> Any:
        return QUEUE_ORDER

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Match], search_term: str
    ) -> tuple[QuerySet[Match], bool]:
        """Each word must match the pair's patient (MRN, given or family name) or its trial
        (NCT id). Patients and trials are looked up first, so that the matches are then
        reached through their patient and trial indexes instead of a scan of every row."""
        for word in smart_split(search_term):
            if word[:1] in ('"', "'") and word[0] == word[-1]:
                word = unescape_string_literal(word)
            if not word:
                continue
            patients: Any = (
                access.patients_for(request.user)
                .filter(
                    Q(external_id__icontains=word)
                    | Q(given_name__icontains=word)
                    | Q(family_name__icontains=word)
                )
                .values_list("pk", flat=True)
            )
            trials: Any = Trial.objects.filter(nct_id__icontains=word).values_list("pk", flat=True)
            patient_ids = list(patients[: SEARCH_ID_LIMIT + 1])
            trial_ids = list(trials[: SEARCH_ID_LIMIT + 1])
            queryset = queryset.filter(
                Q(patient_id__in=patient_ids if len(patient_ids) <= SEARCH_ID_LIMIT else patients)
                | Q(trial_id__in=trial_ids if len(trial_ids) <= SEARCH_ID_LIMIT else trials)
            )
        return queryset, False

    def get_list_display(self, request: HttpRequest) -> Any:
        sites = access.site_ids(request.user)
        # Last, so that the sort parameters (column numbers) are the same for everyone.
        if sites is None or len(sites) > 1:
            return (*self.list_display, "site")
        return self.list_display

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"title": "Review queue", **(extra_context or {})}
        response = super().changelist_view(request, context)
        if isinstance(response, TemplateResponse) and response.context_data:
            changelist = response.context_data.get("cl")
            if changelist is not None:
                shown = {match.patient_id: match.patient for match in changelist.result_list}
                record_access(
                    shown.values(),
                    actor=request.user,
                    purpose="admin: review queue",
                    remote_addr=client_ip(request),
                )
        return response

    @admin.display(description="flag", ordering="flagged")
    def flag(self, match: Match) -> str:
        if not match.flagged:
            return ""
        return format_html(
            '<span class="ws-badge ws-badge--flag" title="{}">⚑ flagged</span>', match.flag_reason
        )

    @admin.display(description="MRN")
    def mrn(self, match: Match) -> str:
        patient = match.patient
        name = f" ({patient.full_name})" if patient.full_name else ""
        return format_html(
            '<a href="{}">{}</a>{}',
            reverse("admin:patients_patient_change", args=[match.patient_id]),
            patient.external_id,
            name,
        )

    @admin.display(description="site")
    def site(self, match: Match) -> str:
        return match.patient.site.code

    @admin.display(description="trial")
    def trial_link(self, match: Match) -> str:
        trial = match.trial
        return format_html(
            '<a href="{}">{}</a> <span class="ws-quiet">{}</span>',
            reverse("admin:trials_trial_change", args=[match.trial_id]),
            trial.nct_id,
            Truncator(trial.title).chars(50),
        )

    @admin.display(description="verdict")
    def verdict_link(self, match: Match) -> str:
        return format_html(
            '<a class="ws-verdict ws-verdict--{}" href="{}" title="Open the match">{}</a>',
            match.verdict,
            pair_url(match.patient_id, match.trial_id),
            match.get_verdict_display(),
        )

    @admin.display(description="score", ordering="score")
    def score_display(self, match: Match) -> str:
        return f"{match.score:.0f}"

    @admin.display(description="distance", ordering=F("distance_km").asc(nulls_last=True))
    def distance(self, match: Match) -> str:
        return distance_text(match.distance_km)

    @admin.display(description="review status")
    def review_status(self, match: Match) -> str:
        status = getattr(match, "review_status", None) or Status.NEW
        return str(Status(status).label) if status in Status.values else status

    @admin.display(description="assignee")
    def assignee(self, match: Match) -> str:
        return getattr(match, "review_assignee", None) or "—"

    @admin.display(description="attention")
    def attention(self, match: Match) -> str:
        badges = []
        if workflow.changed_since_review(_review_of_row(match), match):
            badges.append(CHANGED_BADGE)
        if not is_current(match, match.patient, match.trial):
            badges.append(STALE_BADGE)
        return mark_safe(" ".join(badges))  # noqa: S308 - constant markup only

    # -- bulk actions ------------------------------------------------------------------------

    def _selected_pairs(
        self, request: HttpRequest, queryset: QuerySet[Match]
    ) -> list[tuple[int, int]] | None:
        pairs = list(queryset.order_by().values_list("patient_id", "trial_id")[: BULK_LIMIT + 1])
        if len(pairs) > BULK_LIMIT:
            self.message_user(
                request,
                f"Select at most {BULK_LIMIT} pairs at a time for this action.",
                messages.ERROR,
            )
            return None
        self._report_vanished(request, len(pairs))
        return pairs

    def _report_vanished(self, request: HttpRequest, found: int) -> None:
        # Re-evaluations replace match rows: a selection made before one may name rows gone.
        if request.POST.get("select_across") == "1":
            return
        asked = len(request.POST.getlist(helpers.ACTION_CHECKBOX_NAME))
        if asked > found:
            self.message_user(
                request,
                f"{asked - found} selected row(s) are no longer in the queue (re-evaluated "
                "meanwhile, or not yours): reload the queue and select them again.",
                messages.WARNING,
            )

    def _problems(self, request: HttpRequest, problems: list[str]) -> None:
        if not problems:
            return
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        self.message_user(
            request, f"{len(problems)} pair(s) not moved: {shown}{more}", messages.WARNING
        )

    @admin.action(description="Assign to me", permissions=["change_review"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Match]) -> None:
        pairs = self._selected_pairs(request, queryset)
        if pairs is None:
            return
        for patient_id, trial_id in pairs:
            workflow.assign(
                workflow.review_for(patient_id, trial_id), request.user, actor=request.user
            )
        self.message_user(request, f"{len(pairs)} pair(s) assigned to you.", messages.SUCCESS)

    @admin.action(description="Mark contacted", permissions=["change_review"])
    def mark_contacted(self, request: HttpRequest, queryset: QuerySet[Match]) -> None:
        pairs = self._selected_pairs(request, queryset)
        if pairs is None:
            return
        moved, problems = workflow.move_pairs(pairs, Status.CONTACTED, actor=request.user)
        if moved:
            self.message_user(request, f"{moved} pair(s) marked contacted.", messages.SUCCESS)
        self._problems(request, problems)

    @admin.action(description="Export CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Match]
    ) -> StreamingHttpResponse | None:
        selected = queryset.order_by().values("pk")[: EXPORT_CAP + 1].count()
        if selected > EXPORT_CAP:
            self.message_user(
                request,
                f"Export at most {EXPORT_CAP:,} pairs at a time: narrow the queue with the "
                "filters (or use the export_matches command for everything).",
                messages.ERROR,
            )
            return None
        self._report_vanished(request, selected)
        patient_ids = set(queryset.order_by().values_list("patient_id", flat=True).distinct())
        record_access(
            [Patient(pk=pk) for pk in sorted(patient_ids)],
            actor=request.user,
            purpose="admin: review queue CSV export",
            remote_addr=client_ip(request),
        )
        rows = queryset.order_by(*QUEUE_ORDER)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="review-queue-{stamp}.csv"'
        return response

    # -- the match page ------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "pair/<int:patient_id>/<int:trial_id>/",
                self.admin_site.admin_view(self.pair_view),
                name="patients_match_pair",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A match row's own URL leads to its pair's page (row ids change on re-evaluation)."""
        match = self.get_object(request, unquote(object_id))
        if match is None:
            raise Http404("No such match.")
        if not self.has_view_permission(request, match):
            raise PermissionDenied
        return HttpResponseRedirect(pair_url(match.patient_id, match.trial_id))

    def pair_view(self, request: HttpRequest, patient_id: int, trial_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        # Outside the user's sites is "not found", exactly like a pair that does not exist.
        patient = get_object_or_404(
            with_facts(access.patients_for(request.user).filter(pk=patient_id))
        )
        trial = get_object_or_404(
            Trial.objects.defer("raw", "eligibility_criteria").prefetch_related("sites"),
            pk=trial_id,
        )
        match = Match.objects.filter(patient=patient, trial=trial).first()
        review = Review.objects.filter(patient=patient, trial=trial).first()
        if match is None and review is None:
            raise Http404("No such match.")

        move_form: MoveForm | None = None
        note_form: NoteForm | None = None
        if request.method == "POST":
            outcome = self._pair_post(request, patient, trial, review)
            if isinstance(outcome, HttpResponse):
                return outcome
            move_form, note_form = outcome
            review = Review.objects.filter(patient=patient, trial=trial).first()

        status = review.status if review else Status.NEW
        allowed = workflow.allowed_next(status)
        move_form = move_form or MoveForm(allowed=allowed)
        move_form.allowed = [(value, Status(value).label) for value in allowed]
        note_form = note_form or NoteForm()

        record_access(
            [patient],
            actor=request.user,
            purpose="admin: match viewed",
            remote_addr=client_ip(request),
        )
        criteria = list(Criterion.objects.filter(trial=trial).order_by("position"))
        listed = checklist(match, criteria) if match else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{patient.external_id} \N{MULTIPLICATION SIGN} {trial.nct_id}",
            "patient": patient,
            "trial": trial,
            "match": match,
            "review": review,
            "status": Status(status),
            "patient_summary": patient_summary(patient, timezone.localdate()),
            "trial_summary": trial_summary(trial, patient),
            "checklist": listed,
            "checklist_groups": (
                [("Inclusion criteria", listed.inclusion), ("Exclusion criteria", listed.exclusion)]
                if listed
                else []
            ),
            "current": is_current(match, patient, trial) if match else False,
            "changed_since_review": workflow.changed_since_review(review, match),
            "distance": distance_text(match.distance_km) if match else "",
            "notes": (
                ReviewNote.objects.filter(review=review).select_related("author") if review else []
            ),
            "transitions": (
                ReviewTransition.objects.filter(review=review).select_related("actor", "assignee")
                if review
                else []
            ),
            "move_form": move_form,
            "note_form": note_form,
            "can_move": self.has_change_review_permission(request),
            "can_note": self.has_add_note_permission(request),
            "patient_url": reverse("admin:patients_patient_change", args=[patient.pk]),
            "trial_url": reverse("admin:trials_trial_change", args=[trial.pk]),
            "queue_url": reverse("admin:patients_match_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/patients/match/pair.html", context)

    def _pair_post(
        self, request: HttpRequest, patient: Patient, trial: Trial, review: Review | None
    ) -> HttpResponse | tuple[MoveForm | None, NoteForm | None]:
        """Carry out one workflow step; a redirect when done, the bound forms when not."""
        action = request.POST.get("action", "")
        if action == "note":
            if not (
                self.has_add_note_permission(request) or self.has_change_review_permission(request)
            ):
                raise PermissionDenied
        elif action in ("move", "assign", "unassign"):
            if not self.has_change_review_permission(request):
                raise PermissionDenied
        else:
            self.message_user(request, "Unknown action; nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        review = review or workflow.review_for(patient, trial)
        here = HttpResponseRedirect(request.path)
        if action == "assign":
            workflow.assign(review, request.user, actor=request.user)
            self.message_user(request, "Assigned to you.", messages.SUCCESS)
            return here
        if action == "unassign":
            workflow.assign(review, None, actor=request.user)
            self.message_user(request, "Unassigned.", messages.SUCCESS)
            return here
        if action == "note":
            note_form = NoteForm(request.POST)
            if note_form.is_valid():
                try:
                    workflow.add_note(review, note_form.cleaned_data["text"], actor=request.user)
                except workflow.WorkflowError as exc:
                    note_form.add_error("text", exc.messages)
                else:
                    self.message_user(request, "Note added.", messages.SUCCESS)
                    return here
            return None, note_form
        move_form = MoveForm(request.POST, allowed=workflow.allowed_next(review.status))
        if move_form.is_valid():
            to_status = move_form.cleaned_data["to_status"]
            try:
                workflow.move(
                    review,
                    to_status,
                    actor=request.user,
                    reason=move_form.cleaned_data["reason"],
                    note=move_form.cleaned_data["note"],
                )
            except workflow.WorkflowError as exc:
                move_form.add_error("to_status", exc.messages)
            else:
                self.message_user(
                    request, f"Moved to {Status(to_status).label.lower()}.", messages.SUCCESS
                )
                return here
        return move_form, None


# --- CSV --------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "mrn",
    "site",
    "nct_id",
    "trial_title",
    "verdict",
    "flagged",
    "flag_reason",
    "score",
    "distance_km",
    "distance_miles",
    "review_status",
    "assignee",
    "changed_since_review",
    "current",
    "evaluated_at",
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_row(match: Match) -> list[Any]:
    patient, trial = match.patient, match.trial
    km = match.distance_km
    status = getattr(match, "review_status", None) or Status.NEW
    row = [
        patient.external_id,
        patient.site.code,
        trial.nct_id,
        trial.title,
        match.verdict,
        "yes" if match.flagged else "no",
        match.flag_reason,
        f"{match.score:g}",
        "" if km is None or not math.isfinite(km) else f"{km:.1f}",
        "" if km is None or not math.isfinite(km) else f"{km_to_miles(km):.1f}",
        status,
        getattr(match, "review_assignee", None) or "",
        "yes" if workflow.changed_since_review(_review_of_row(match), match) else "no",
        "yes" if is_current(match, patient, trial) else "no",
        timezone.localtime(match.evaluated_at).isoformat(timespec="seconds"),
    ]
    return [spreadsheet.cell(value) for value in row]


def csv_lines(queryset: QuerySet[Match]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for match in queryset.iterator(chunk_size=1000):
        yield writer.writerow(csv_row(match))
