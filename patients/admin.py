"""Admin pages for patient profiles: every fact kind as an inline, derived facts explained,
every view of a patient recorded in the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from patients import models
from patients.audit import record_access
from patients.exports import derived_facts
from patients.facts import patient_facts, with_facts
from patients.tasks import queue_patient_matching
from trials.eligibility import facts as engine


class FactInline(admin.TabularInline):
    extra = 0
    readonly_fields = ("provenance",)
    fact_fields: tuple[str, ...] = ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.fact_fields, "observed_on", "provenance"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("recorded_by")

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
    list_display = ("name", "code", "postal_code", "country")
    search_fields = ("name", "code")


@admin.register(models.Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("external_id", "site", "sex", "birth_date", "source", "updated_at")
    list_filter = ("site", "source", "sex")
    search_fields = ("external_id",)
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
            {"fields": ("site", "external_id", "sex", "birth_date", "prior_anticancer_therapy")},
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[models.Patient]:
        return super().get_queryset(request).select_related("site")

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

    def save_model(
        self, request: HttpRequest, obj: models.Patient, form: Any, change: bool
    ) -> None:
        if not change:
            obj.source = models.Source.ADMIN
        obj.updated_at = timezone.now()
        located = {"postal_code", "city", "country"}
        if not change or {*models.MATCHED_FIELDS, *located} & set(form.changed_data):
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

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            patient = self.get_object(request, object_id)
            if patient is not None:
                record_access(
                    [patient],
                    actor=request.user,
                    purpose="admin: profile viewed",
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
        return response

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
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
        return response
