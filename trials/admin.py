"""Admin pages for trials and registry syncs (what the registry says is read-only here).

The trial page puts the registry's eligibility text beside the engine's reading (the
criteria below are the coordinators' curation), the classification with its evidence, the
versions with what changed in the eligibility text between them, and the sites.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from trials.criteria import criterion_correct, trial_set_classification
from trials.eligibility.constraints import ConstraintError, constraint_from_dict
from trials.models import Criterion, SyncRun, Trial, TrialSite, TrialVersion
from trials.tasks import queue_trial_matching, sync_trials_task


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TrialSiteInline(ReadOnlyInline):
    model = TrialSite
    fields = ("facility", "status", "city", "state", "zip", "country", "latitude", "longitude")


class CriterionForm(forms.ModelForm):
    """A coordinator's correction of one criterion; constraints in the labels' vocabulary."""

    corrected_constraints = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 50}),
        help_text='e.g. [{"type": "ecog", "allowed": [0, 1]}]; empty keeps the engine\'s',
    )

    class Meta:
        model = Criterion
        fields = (
            "corrected_category",
            "corrected_constraints",
            "corrected_join",
            "correction_note",
        )
        widgets = {"correction_note": forms.Textarea(attrs={"rows": 2, "cols": 30})}

    def clean_corrected_constraints(self) -> Any:
        value = self.cleaned_data.get("corrected_constraints")
        if value in (None, ""):
            return None
        if not isinstance(value, list):
            raise forms.ValidationError("Give a list of constraints.")
        for index, item in enumerate(value, start=1):
            try:
                constraint_from_dict(item)
            except ConstraintError as exc:
                raise forms.ValidationError(f"Constraint {index}: {exc}") from None
        return value


class CriterionInline(admin.TabularInline):
    model = Criterion
    form = CriterionForm
    extra = 0
    can_delete = False
    fields = (
        "position",
        "kind",
        "criterion_text",
        "category",
        "reading",
        "corrected_category",
        "corrected_constraints",
        "corrected_join",
        "correction_note",
        "review",
    )
    readonly_fields = ("position", "kind", "criterion_text", "category", "reading", "review")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Criterion]:
        return super().get_queryset(request).select_related("corrected_by")

    @admin.display(description="text")
    def criterion_text(self, criterion: Criterion) -> str:
        indent = "↳ " if criterion.parent_position is not None else ""
        return indent + criterion.text

    @admin.display(description="engine's reading")
    def reading(self, criterion: Criterion) -> str:
        if not criterion.constraints:
            return "not read: needs review"
        parts = []
        for item in criterion.constraints:
            try:
                parts.append(constraint_from_dict(item).describe())
            except ConstraintError:
                parts.append(str(item))
        joiner = " OR " if criterion.join == "any" else "; "
        return joiner.join(parts)

    @admin.display(description="status")
    def review(self, criterion: Criterion) -> str:
        if criterion.needs_review:
            return "corrected before the text changed: review"
        if criterion.corrected:
            who = criterion.corrected_by.get_username() if criterion.corrected_by else ""
            return f"corrected by {who}"
        return _reading_status(criterion)


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = (
        "nct_id",
        "short_title",
        "overall_status",
        "gastric_preop_immunotherapy",
        "phase_list",
        "last_update_posted",
        "version_count",
        "curation_needs_review",
        "removed_from_registry",
    )
    list_filter = (
        "gastric_preop_immunotherapy",
        "overall_status",
        "curation_needs_review",
        "removed_from_registry",
        "needs_evaluation",
        "study_type",
    )
    search_fields = ("nct_id", "brief_title", "official_title", "acronym")
    date_hierarchy = "last_update_posted"
    inlines = (CriterionInline, TrialSiteInline)
    actions = ("mark_reviewed",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "nct_id",
                    "registry_link",
                    "brief_title",
                    "official_title",
                    "overall_status",
                    "phases",
                    "study_type",
                    "lead_sponsor",
                    "last_update_posted",
                    "removed_from_registry",
                )
            },
        ),
        (
            "Classification: gastric preoperative immunotherapy",
            {
                "fields": (
                    "classification_summary",
                    "classification_override",
                    "classification_note",
                    "curation_needs_review",
                    "orphaned",
                )
            },
        ),
        (
            "Eligibility: the registry's text beside the engine's reading",
            {"fields": ("eligibility_review",)},
        ),
        ("Versions: what changed between syncs", {"fields": ("version_history",)}),
        (
            "Record",
            {
                "classes": ("collapse",),
                "fields": (
                    "conditions",
                    "condition_mesh_terms",
                    "keywords",
                    "interventions",
                    "arm_groups",
                    "brief_summary",
                    "start_date",
                    "completion_date",
                    "minimum_age_value",
                    "minimum_age_unit",
                    "maximum_age_value",
                    "maximum_age_unit",
                    "sex",
                    "healthy_volunteers",
                    "version_count",
                    "criteria_engine_version",
                    "raw_record",
                ),
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        editable = {"classification_override", "classification_note"}
        if not request.user.has_perm("trials.change_trial"):
            editable = set()  # a coordinator curating criteria only
        mapped = [f.name for f in Trial._meta.fields if f.name != "raw" and f.name not in editable]
        return [
            *mapped,
            "registry_link",
            "raw_record",
            "classification_summary",
            "eligibility_review",
            "version_history",
            "orphaned",
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Coordinators curate a trial's criteria (trials.change_criterion) on its page without
        # the right to change the trial itself: its page must accept their corrections.
        if super().has_change_permission(request, obj):
            return True
        return obj is not None and request.user.has_perm("trials.change_criterion")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        queue_trial_matching([form.instance.pk])  # corrections change what the matcher reads

    def save_model(self, request: HttpRequest, obj: Trial, form: Any, change: bool) -> None:
        if {"classification_override", "classification_note"} & set(form.changed_data):
            trial_set_classification(
                obj,
                override=form.cleaned_data["classification_override"],
                note=form.cleaned_data["classification_note"],
                user=request.user,
            )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Criterion:
            formset.save()
            return
        # What formset.save() would record, for the admin's change message (history).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            data = inline_form.cleaned_data
            criterion_correct(
                inline_form.instance,
                category=data.get("corrected_category", ""),
                constraints=data.get("corrected_constraints"),
                join=data.get("corrected_join", ""),
                note=data.get("correction_note", ""),
                user=request.user,
            )
            formset.changed_objects.append((inline_form.instance, inline_form.changed_data))

    @admin.display(description="title")
    def short_title(self, trial: Trial) -> str:
        title = trial.title
        return title if len(title) <= 90 else title[:89] + "…"

    @admin.display(description="phases")
    def phase_list(self, trial: Trial) -> str:
        return ", ".join(trial.phases)

    @admin.display(description="ClinicalTrials.gov")
    def registry_link(self, trial: Trial) -> str:
        url = trial.get_registry_url()
        return format_html('<a href="{}" rel="noopener" target="_blank">{}</a>', url, url)

    @admin.display(description="record as received")
    def raw_record(self, trial: Trial) -> str:
        return format_html(
            '<pre class="raw-record">{}</pre>',
            json.dumps(trial.raw, indent=2, ensure_ascii=False),
        )

    @admin.display(description="classification and its evidence")
    def classification_summary(self, trial: Trial) -> str:
        evidence: dict[str, list[dict[str, str]]] = {}
        for item in trial.classification_evidence:
            evidence.setdefault(item.get("question", ""), []).append(item)
        answers = format_html_join(
            "",
            "<li>{}: <strong>{}</strong>{}</li>",
            (
                (label, _yes(answer), _evidence_list(evidence.get(question, [])))
                for question, label, answer in (
                    ("gastric", "gastric or GEJ cancer", trial.classified_gastric),
                    ("immunotherapy", "an arm gives immunotherapy", trial.classified_immunotherapy),
                    ("preoperative", "given before surgery", trial.classified_preoperative),
                )
            ),
        )
        against = evidence.get("against", [])
        against_html = (
            format_html("<p>Read as speaking against:</p>{}", _evidence_list(against))
            if against
            else ""
        )
        engine_says = (
            trial.classified_gastric
            and trial.classified_immunotherapy
            and trial.classified_preoperative
        )
        if trial.classification_override is None:
            verdict = format_html(
                "<p>Gastric preoperative immunotherapy trial: <strong>{}</strong> "
                "(the engine's answer)</p>",
                _yes(trial.gastric_preop_immunotherapy),
            )
        else:
            who = trial.classification_by.get_username() if trial.classification_by else "?"
            when = f"{trial.classification_at:%Y-%m-%d}" if trial.classification_at else ""
            verdict = format_html(
                "<p>Gastric preoperative immunotherapy trial: <strong>{}</strong> "
                "(coordinator's classification by {} {}; the engine says {})</p>{}",
                _yes(trial.classification_override),
                who,
                when,
                _yes(engine_says),
                format_html("<p>Note: {}</p>", trial.classification_note)
                if trial.classification_note
                else "",
            )
        return format_html("{}<ul>{}</ul>{}", verdict, answers, against_html)

    @admin.display(description="original text and reading")
    def eligibility_review(self, trial: Trial) -> str:
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td class="{}">{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    criterion.position,
                    criterion.get_kind_display(),
                    "child" if criterion.parent_position is not None else "",
                    criterion.text,
                    criterion.effective_category.replace("_", " "),
                    _reading_status(criterion),
                )
                for criterion in trial.criteria.order_by("position")
            ),
        )
        text = trial.eligibility_criteria or "The registry gives no eligibility text."
        return format_html(
            '<div class="eligibility-columns">'
            '<section aria-label="Registry text"><h3>As the registry gives it</h3>'
            '<pre class="eligibility-text">{}</pre></section>'
            '<section class="criteria-column" aria-label="Engine reading">'
            "<h3>As the engine reads it (correct it in the criteria below)</h3>"
            '<table class="parsed-criteria"><thead><tr><th scope="col">#</th>'
            '<th scope="col">kind</th><th scope="col">criterion</th>'
            '<th scope="col">category</th><th scope="col">status</th></tr></thead>'
            "<tbody>{}</tbody></table></section></div>",
            text,
            rows or format_html('<tr><td colspan="5">{}</td></tr>', "Not read yet."),
        )

    @admin.display(description="versions")
    def version_history(self, trial: Trial) -> str:
        versions = list(trial.versions.order_by("number"))
        if not versions:
            return "No version recorded."
        items = []
        previous: TrialVersion | None = None
        for version in versions:
            items.append(_version_item(version, previous))
            previous = version
        return format_html(
            '<ol class="version-history" reversed>{}</ol>',
            format_html_join("", "{}", ((item,) for item in reversed(items))),
        )

    @admin.display(description="corrections of criteria no longer in the text")
    def orphaned(self, trial: Trial) -> str:
        if not trial.orphaned_corrections:
            return "none"
        return format_html_join(
            "",
            "<p>“{}” → {} (by {}, {})</p>",
            (
                (
                    item["text"][:120],
                    item.get("category") or item.get("constraints"),
                    item.get("by", ""),
                    item.get("note", ""),
                )
                for item in trial.orphaned_corrections
            ),
        )

    @admin.action(description="Mark the curation as reviewed", permissions=["change"])
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[Trial]) -> None:
        count = queryset.update(curation_needs_review=False)
        Criterion.objects.filter(trial__in=queryset).update(needs_review=False)
        self.message_user(request, f"{count} trial(s) marked as reviewed.", messages.SUCCESS)


def _yes(value: bool | None) -> str:
    return "yes" if value else "no"


def _evidence_list(items: list[dict[str, str]]) -> str:
    if not items:
        return format_html(" <span>{}</span>", "(no evidence found)")
    return format_html(
        "<ul>{}</ul>",
        format_html_join(
            "",
            "<li>{}: “{}”</li>",
            ((item.get("field", ""), item.get("words", "")) for item in items),
        ),
    )


def _reading_status(criterion: Criterion) -> str:
    """complete / incomplete (with the words) / suspect (with the reason) / corrected."""
    if criterion.needs_review:
        return "⚠ corrected before the text changed: review"
    if criterion.corrected:
        return "✎ corrected"
    if not criterion.parsed:
        return "? not read: needs review"
    if criterion.reading_marks:
        return "⚠ suspect: " + "; ".join(criterion.reading_marks)
    if criterion.reading_gaps:
        words = ", ".join(f"“{gap}”" for gap in criterion.reading_gaps)
        return f"◐ incomplete, not understood: {words}"
    return "✓ complete"


def _version_item(version: TrialVersion, previous: TrialVersion | None) -> str:
    """One version: when, status, what changed, and the eligibility text's diff."""
    posted = f", posted {version.last_update_posted:%Y-%m-%d}" if version.last_update_posted else ""
    heading = format_html(
        "<strong>Version {}</strong> (recorded {}{}): status {}; changed: {}",
        version.number,
        f"{timezone.localtime(version.recorded_at):%Y-%m-%d %H:%M}",
        posted,
        version.overall_status or "unknown",
        ", ".join(version.changes) or "nothing recorded",
    )
    if previous is None:
        return format_html("<li>{}<p>{}</p></li>", heading, "The first version recorded.")
    notes = []
    if previous.overall_status != version.overall_status:
        notes.append(
            format_html(
                "<p>Status: {} → {}</p>",
                previous.overall_status or "unknown",
                version.overall_status or "unknown",
            )
        )
    if previous.eligibility_criteria == version.eligibility_criteria:
        notes.append(format_html("<p>{}</p>", "The eligibility text did not change."))
    else:
        notes.append(
            format_html(
                "<p>Eligibility text, version {} → {} (<del>- removed</del>, "
                "<ins>+ added</ins>):</p>"
                '<pre class="version-diff">{}</pre>',
                previous.number,
                version.number,
                eligibility_diff(previous.eligibility_criteria, version.eligibility_criteria),
            )
        )
    return format_html("<li>{}{}</li>", heading, format_html_join("", "{}", ((n,) for n in notes)))


def eligibility_diff(before: str, after: str) -> str:
    """The changed lines of the eligibility text with two lines of context, as HTML: removed
    lines in <del> marked "-", added ones in <ins> marked "+" (never by colour alone)."""
    lines = []
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2)
    for line in diff:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(format_html('<span class="hunk">{}</span>', "…"))
        elif line.startswith("-"):
            lines.append(format_html("<del>- {}</del>", line[1:]))
        elif line.startswith("+"):
            lines.append(format_html("<ins>+ {}</ins>", line[1:]))
        else:
            lines.append(format_html('<span class="same">  {}</span>', line[1:]))
    return format_html_join("", "{}", ((line,) for line in lines))


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "mode",
        "status",
        "started_at",
        "duration",
        "pages",
        "fetched",
        "created",
        "updated",
        "unchanged",
        "removed",
        "failed",
    )
    list_filter = ("status", "mode")
    exclude = ("errors",)
    change_list_template = "admin/trials/syncrun/change_list.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [
            *(field.name for field in SyncRun._meta.fields if field.name != "errors"),
            "error_list",
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The list (for actions) to those allowed to change runs; a run itself, never.
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="duration")
    def duration(self, run: SyncRun) -> str:
        seconds = run.duration_seconds
        return "" if seconds is None else f"{seconds:.0f} s"

    @admin.display(description="errors")
    def error_list(self, run: SyncRun) -> str:
        if not run.errors:
            return "none"
        items = format_html_join(
            "", "<li><code>{}</code>: {}</li>", ((e["record"], e["message"]) for e in run.errors)
        )
        more = run.failed - len(run.errors)
        suffix = format_html("<p>… and {} more not kept.</p>", more) if more > 0 else ""
        return format_html("<ul>{}</ul>{}", items, suffix)

    def get_urls(self) -> list[URLPattern]:
        urls: list[URLPattern] = [
            path(
                "sync-now/",
                self.admin_site.admin_view(self.sync_now_view),
                name="trials_syncrun_sync_now",
            )
        ]
        return urls + super().get_urls()

    def sync_now_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a sync for the workers (POST from the button on the list page)."""
        if request.method != "POST" or not request.user.has_perm("trials.add_syncrun"):
            raise PermissionDenied
        full = request.POST.get("mode") == "full"
        result = sync_trials_task.delay(full=full)
        kind = "Full" if full else "Incremental"
        self.message_user(
            request,
            f"{kind} sync queued (task {result.id}); it appears here once a worker starts it.",
            messages.INFO,
        )
        return redirect("admin:trials_syncrun_changelist")
