"""Admin pages for patient profiles and hospital sites, scoped to the user's sites.

A coordinator sees the patients of their own sites only, everywhere: list, search,
autocomplete, detail (another site's patient is a 404), actions, inlines, and the matched
patients on a trial page. The patient page shows every fact kind as an inline with its source
and date, what would decide the open questions, and every match of the patient. Every view of
a patient is recorded in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.addresses import client_ip
from patients import models
from patients.access import (
    manageable_staff,
    narrow,
    patients_for,
    sees_all,
    site_ids,
    sites_for,
)
from patients.audit import record_access
from patients.exports import derived_facts
from patients.facts import patient_facts, with_facts
from patients.matching import MATCHER_VERSION, deciding_facts_for
from patients.services import locate_patient
from patients.tasks import queue_patient_matching
from patients.workflow import changed_since_review
from trials import admin as trials_admin
from trials.eligibility import facts as engine
from trials.models import Trial


def match_page_url(patient_id: int, trial_id: int) -> str:
    """The match page of one (patient, trial) pair (routed by ``patients.admin_review``)."""
    return reverse("admin:patients_match_pair", args=[patient_id, trial_id])


# Flagged pairs first, then possible, eligible, ineligible; the best score first within each.
QUEUE_ORDER = (
    "-flagged",
    Case(
        When(verdict=models.Match.Verdict.POSSIBLE, then=Value(0)),
        When(verdict=models.Match.Verdict.ELIGIBLE, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    ),
    "-score",
)
# A symbol beside each verdict's word, so that it never rests on colour alone.
VERDICT_SYMBOLS: dict[str, str] = {
    models.Match.Verdict.ELIGIBLE: "✓",
    models.Match.Verdict.POSSIBLE: "?",
    models.Match.Verdict.INELIGIBLE: "✗",
}


@dataclass(frozen=True)
class MatchRow:
    """One match as the patient and trial pages list it."""

    match: models.Match
    review: models.Review | None
    current: bool

    @property
    def url(self) -> str:
        return match_page_url(self.match.patient_id, self.match.trial_id)

    @property
    def verdict_symbol(self) -> str:
        return VERDICT_SYMBOLS.get(self.match.verdict, "")

    @property
    def review_status(self) -> str:
        return self.review.get_status_display() if self.review else "New (not reviewed)"

    @property
    def changed_since_review(self) -> bool:
        return changed_since_review(self.review, self.match)


def is_current(match: models.Match, patient: models.Patient, trial: Trial) -> bool:
    """Evaluated on the patient's and the trial's present inputs (``Match.objects.current``)."""
    return (
        match.engine_version == MATCHER_VERSION
        and match.patient_facts_at == patient.facts_changed_at
        and match.trial_inputs_at == trial.matching_inputs_at
    )


def _remote_addr(request: HttpRequest) -> str | None:
    return client_ip(request) or None


class FactInline(admin.TabularInline):
    extra = 0
    readonly_fields = ("provenance",)
    fact_fields: tuple[str, ...] = ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.fact_fields, "observed_on", "provenance"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The parent page is scoped already; narrowed again so no fact leaks on its own.
        return narrow(super().get_queryset(request), request.user).select_related("recorded_by")

    @admin.display(description="source")
    def provenance(self, fact: models.Fact) -> str:
        if not fact.pk:
            return ""
        if fact.recorded_by is None:
            return fact.provenance_text()
        verb = "by" if fact.source == models.Source.ADMIN else "edited by"
        return f"{fact.provenance_text()} ({verb} {fact.recorded_by})"


class PrimaryCancerInline(FactInline):
    model = models.PrimaryCancer
    fact_fields = ("site", "siewert_type", "icd10_code", "histology", "morphology_code")
    verbose_name_plural = "primary cancer (date = diagnosis)"


class StageInline(FactInline):
    model = models.StageObservation
    fact_fields = ("context", "category", "value")


class MetastasisInline(FactInline):
    model = models.Metastasis
    fact_fields = ("location", "icd10_code")


class PerformanceInline(FactInline):
    model = models.PerformanceStatus
    fact_fields = ("scale", "value")


class LabInline(FactInline):
    model = models.LabResult
    fact_fields = ("analyte", "original_value", "original_unit", "original_uln")
    readonly_fields = ("canonical", "provenance")  # type: ignore[assignment]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.fact_fields, "canonical", "observed_on", "provenance"]

    @admin.display(description="canonical")
    def canonical(self, lab: models.LabResult) -> str:
        if not lab.pk:
            return ""
        uln = f", ULN {lab.uln:g}" if lab.uln is not None else ""
        return f"{lab.value:g} {lab.unit}{uln}"


class BiomarkerInline(FactInline):
    model = models.Biomarker
    fact_fields = ("marker", "value", "numeric_value")


class TreatmentInline(FactInline):
    model = models.Treatment
    fact_fields = ("category", "agent", "agent_class", "intent", "status", "start_date", "end_date")


class MedicationInline(FactInline):
    model = models.Medication
    fact_fields = ("name", "category", "active", "prednisone_mg_per_day", "start_date", "end_date")


class ComorbidityInline(FactInline):
    model = models.Comorbidity
    fact_fields = ("kind", "name", "icd10_code", "present", "active", "onset_date")


class ReproductiveInline(FactInline):
    model = models.ReproductiveStatus
    fact_fields = ("pregnant", "breastfeeding")


class SurgeryInline(FactInline):
    model = models.Surgery
    fact_fields = ("procedure", "status")


@admin.register(models.Site)
class SiteAdmin(admin.ModelAdmin):
    """Sites and who looks after them. A coordinator sees their own sites; a site admin also
    changes who belongs to them, choosing among the staff they may manage
    (``patients.access.manageable_staff``); only a superuser adds sites or changes their
    details."""

    list_display = ("name", "code", "postal_code", "country", "coordinator_names", "patients")
    search_fields = ("name", "code")
    fields = ("name", "code", "postal_code", "country", "latitude", "longitude", "coordinators")
    filter_horizontal = ("coordinators",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[models.Site]:
        return (
            narrow(super().get_queryset(request), request.user, via="pk")
            .annotate(patient_count=Count("patients"))
            .prefetch_related("coordinators")
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        site = super().get_object(request, object_id, from_field)
        if site is None:
            raise Http404("No such site.")
        return site

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser:
            return ()
        return ("name", "code", "postal_code", "country", "latitude", "longitude")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        allowed = site_ids(request.user)
        return obj is None or allowed is None or obj.pk in allowed

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "coordinators":
            # The choices and what the form accepts: a member outside them is refused as an
            # invalid choice, whatever the form posted.
            kwargs["queryset"] = manageable_staff(request.user).order_by("username")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="coordinators")
    def coordinator_names(self, site: models.Site) -> str:
        return ", ".join(sorted(user.get_username() for user in site.coordinators.all())) or "none"

    @admin.display(description="patients", ordering="patient_count")
    def patients(self, site: models.Site) -> int:
        return int(getattr(site, "patient_count", 0))


@admin.register(models.Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "site",
        "sex",
        "birth_date",
        "candidacy",
        "flags",
        "source",
        "updated_at",
    )
    list_filter = (
        ("site", admin.RelatedOnlyFieldListFilter),
        "surgical_candidate",
        "deceased",
        "source",
        "sex",
    )
    search_fields = ("external_id", "family_name", "given_name")
    list_select_related = ("site",)
    inlines = (
        PrimaryCancerInline,
        StageInline,
        MetastasisInline,
        PerformanceInline,
        LabInline,
        BiomarkerInline,
        TreatmentInline,
        MedicationInline,
        ComorbidityInline,
        ReproductiveInline,
        SurgeryInline,
    )
    readonly_fields = ("derived", "location", "source", "source_reference", "created_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "site",
                    ("external_id", "identifier_system"),
                    "sex",
                    "birth_date",
                    ("deceased", "deceased_on"),
                    "prior_anticancer_therapy",
                )
            },
        ),
        ("Where", {"fields": ("postal_code", "city", "country", "location")}),
        (
            "Contact (referrals from the public form)",
            {
                "classes": ("collapse",),
                "fields": (
                    "given_name",
                    "family_name",
                    "email",
                    "phone",
                    "preferred_contact_time",
                    "contact_consent_at",
                ),
            },
        ),
        ("Derived facts", {"fields": ("derived",)}),
        ("Provenance", {"fields": ("source", "source_reference", "created_at")}),
    )

    # --- scoping: every way to a patient goes through the user's sites ---------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[models.Patient]:
        return patients_for(request.user, super().get_queryset(request)).select_related("site")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[models.Patient], search_term: str
    ) -> tuple[QuerySet[models.Patient], bool]:
        # The autocomplete view passes its own queryset here: narrowed whatever its origin.
        return super().get_search_results(
            request, patients_for(request.user, queryset), search_term
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Another site's patient is "not found", exactly like one that does not exist.
        patient = super().get_object(request, object_id, from_field)
        if patient is None:
            raise Http404("No such patient.")
        return patient

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "site":
            kwargs["queryset"] = sites_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        own = site_ids(request.user)
        if "site" not in initial and own is not None and len(own) == 1:
            initial["site"] = next(iter(own))
        return initial

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # A patient's matches are derived from it and never deleted on their own (read only in
        # the queue): they go with the patient, on the patient's delete permission.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed - {str(models.Match._meta.verbose_name)}, protected

    # --- the list -------------------------------------------------------------------------

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        shown = list(changelist.result_list)  # evaluated once; the template reuses it
        flags = dict(
            models.Match.objects.current()
            .filter(patient_id__in=[patient.pk for patient in shown], flagged=True)
            .values("patient_id")
            .annotate(count=Count("pk"))
            .values_list("patient_id", "count")
        )
        for patient in shown:
            patient.flag_count = flags.get(patient.pk, 0)
        return changelist

    @admin.display(description="surgical candidate", ordering="surgical_candidate")
    def candidacy(self, patient: models.Patient) -> str:
        return {True: "yes", False: "no"}.get(patient.surgical_candidate, "unknown")  # type: ignore[arg-type]

    @admin.display(description="flagged trials")
    def flags(self, patient: models.Patient) -> str:
        count = getattr(patient, "flag_count", 0)
        return f"⚑ {count} flagged" if count else "none"

    # --- the patient page -----------------------------------------------------------------

    @admin.display(description="derived")
    def derived(self, patient: models.Patient) -> str:
        if not patient.pk:
            return "Saved profiles show their derived facts here."
        loaded = with_facts(models.Patient.objects.filter(pk=patient.pk)).get()
        facts = patient_facts(loaded)
        today = timezone.localdate()
        rows = [
            ("Age", f"{engine.age(facts, today)} years" if facts.birth_date else "unknown"),
            ("Surgical candidate", engine.surgical_candidate(facts).explanation),
        ]
        rows += [
            (name.replace("_", " ").capitalize(), item["explanation"])
            for name, item in derived_facts(facts, today).items()
        ]
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.display(description="location")
    def location(self, patient: models.Patient) -> str:
        if patient.latitude is None:
            return "not located (postal code and country are used, offline)"
        return (
            f"{patient.latitude:.3f}, {patient.longitude:.3f} "
            f"(from the {patient.location_precision.replace('_', ' ')})"
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: models.Patient | None = None,
    ) -> Any:
        if obj is not None and obj.pk:
            context["patient_page"] = patient_page(obj)
            # Rendered is shown, whatever the method (a form sent back with errors too).
            record_access(
                [obj],
                actor=request.user,
                purpose="admin: profile viewed",
                remote_addr=_remote_addr(request),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(
        self, request: HttpRequest, obj: models.Patient, form: Any, change: bool
    ) -> None:
        if not change:
            obj.source = models.Source.ADMIN
        obj.updated_at = timezone.now()
        changed = set(form.changed_data)
        moved = not change or bool({"postal_code", "city", "country"} & changed)
        if moved:
            locate_patient(obj)
        if moved or set(models.MATCHED_FIELDS) & changed:
            obj.facts_changed_at = obj.updated_at
        super().save_model(request, obj, form, change)
        if obj.facts_changed_at == obj.updated_at:
            queue_patient_matching([obj.pk])

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        instances = formset.save(commit=False)
        for instance in instances:
            if not instance.pk:
                instance.source = models.Source.ADMIN
            # New or edited: the coordinator is who recorded this value (an imported fact
            # keeps its source, so a later import of the same resource still updates it).
            instance.recorded_by = request.user
            instance.save()
        for deleted in formset.deleted_objects:
            deleted.delete()
        if instances or formset.deleted_objects:
            models.Patient.objects.filter(pk=form.instance.pk).update(
                facts_changed_at=timezone.now()
            )
            queue_patient_matching([form.instance.pk])

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data:
            changelist = response.context_data.get("cl")
            if changelist is not None:
                record_access(
                    changelist.result_list,
                    actor=request.user,
                    purpose="admin: patient list",
                    remote_addr=_remote_addr(request),
                )
        return response


def patient_page(patient: models.Patient) -> dict[str, Any]:
    """What the patient page shows beside the form: candidacy, what would decide the open
    questions, and every match (three queries, whatever the number of matches)."""
    matches = list(
        models.Match.objects.filter(patient=patient)
        .select_related("trial")
        .only(
            *models.MATCH_LIST_FIELDS,
            "evaluated_at",
            "trial__nct_id",
            "trial__brief_title",
            "trial__official_title",
            "trial__overall_status",
            "trial__matching_inputs_at",
        )
        .order_by(*QUEUE_ORDER, "trial__nct_id")
    )
    reviews = {
        review.trial_id: review
        for review in models.Review.objects.filter(patient=patient).select_related("assignee")
    }
    rows = [
        MatchRow(match, reviews.get(match.trial_id), is_current(match, patient, match.trial))
        for match in matches
    ]
    trial_ids = {match.trial.nct_id: match.trial_id for match in matches}
    deciding = [
        {
            "fact": item.fact,
            "describe": item.describe(),
            "trials": [
                (nct_id, match_page_url(patient.pk, trial_ids[nct_id]))
                for nct_id in item.trials
                if nct_id in trial_ids
            ],
        }
        for item in deciding_facts_for(patient)
    ]
    counts = dict.fromkeys(models.Match.Verdict.values, 0)
    for match in matches:
        counts[match.verdict] += 1
    return {
        "candidacy": {True: "Yes", False: "No"}.get(
            patient.surgical_candidate,  # type: ignore[arg-type]
            "Unknown",
        ),
        "candidacy_symbol": {True: "✓", False: "✗"}.get(patient.surgical_candidate, "?"),  # type: ignore[arg-type]
        "candidacy_reason": patient.surgical_candidate_reason,
        "deciding": deciding,
        "matches": rows,
        "flagged": sum(match.flagged for match in matches),
        "counts": [
            (models.Match.Verdict(verdict).label, count) for verdict, count in counts.items()
        ],
        "stale": sum(not row.current for row in rows),
    }


# --- the trial page's matched patients ------------------------------------------------------

MATCHED_PATIENTS_SHOWN = 200


class TrialAdmin(trials_admin.TrialAdmin):
    """The trial page with the patients it matched, of the user's sites only.

    Registered here, over the trials app's own, because trials never depend on patients.
    """

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Trial | None = None,
    ) -> Any:
        if obj is not None and obj.pk:
            section = matched_patients(request, obj)
            context["matched_patients"] = section
            if section["rows"]:  # rendered is shown, whatever the method
                record_access(
                    [row.match.patient for row in section["rows"]],
                    actor=request.user,
                    purpose="admin: trial page, matched patients",
                    remote_addr=_remote_addr(request),
                )
        return super().render_change_form(request, context, add, change, form_url, obj)


def matched_patients(request: HttpRequest, trial: Trial) -> dict[str, Any]:
    """The trial's matches with the user's patients, flagged first (three queries)."""
    visible = narrow(models.Match.objects.filter(trial=trial), request.user)
    totals = {
        (verdict, flagged): count
        for verdict, flagged, count in visible.order_by()
        .values("verdict", "flagged")
        .annotate(count=Count("pk"))
        .values_list("verdict", "flagged", "count")
    }
    total = sum(totals.values())
    matches = list(
        visible.select_related("patient", "patient__site")
        .only(
            *models.MATCH_LIST_FIELDS,
            "patient__external_id",
            "patient__facts_changed_at",
            "patient__site__code",
        )
        .order_by(*QUEUE_ORDER, "patient__external_id")[:MATCHED_PATIENTS_SHOWN]
    )
    reviews = {
        review.patient_id: review
        for review in narrow(models.Review.objects.filter(trial=trial), request.user).filter(
            patient_id__in=[match.patient_id for match in matches]
        )
    }
    return {
        "rows": [
            MatchRow(match, reviews.get(match.patient_id), is_current(match, match.patient, trial))
            for match in matches
        ],
        "total": total,
        "shown": len(matches),
        "flagged": sum(count for (_, flagged), count in totals.items() if flagged),
        "counts": [
            (label, sum(count for (verdict, _), count in totals.items() if verdict == value))
            for value, label in models.Match.Verdict.choices
        ],
        "all_sites": sees_all(request.user),
    }


admin.site.unregister(Trial)
admin.site.register(Trial, TrialAdmin)


# --- the audit log --------------------------------------------------------------------------


class AuditLogAdmin(LogEntryAdmin):
    """The audit trail names every patient anyone looked at: for superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


admin.site.unregister(LogEntry)
admin.site.register(LogEntry, AuditLogAdmin)


# The review queue and the match page live in their own module; importing it registers them.
from patients import admin_review  # noqa: E402, F401


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API keys of hospital systems, for superusers: who, what for, when last used; revoke.

    Keys are made with ``manage.py create_api_token`` (shown once there); only their hash is
    stored, so nothing here can show one.
    """

    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False)) and obj is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, not deleted: the record of who had access stays

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[models.ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} key(s) revoked; they are refused from now on.")
