"""Admin pages for trials and registry syncs (what the registry says is read-only here)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join

from trials.models import SyncRun, Trial, TrialSite, TrialVersion
from trials.tasks import sync_trials_task


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


class TrialVersionInline(ReadOnlyInline):
    model = TrialVersion
    fields = ("number", "recorded_at", "last_update_posted", "overall_status", "changes")


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = (
        "nct_id",
        "short_title",
        "overall_status",
        "phase_list",
        "last_update_posted",
        "version_count",
        "removed_from_registry",
    )
    list_filter = ("overall_status", "removed_from_registry", "needs_evaluation", "study_type")
    search_fields = ("nct_id", "brief_title", "official_title", "acronym")
    date_hierarchy = "last_update_posted"
    inlines = (TrialSiteInline, TrialVersionInline)
    readonly_fields = ("registry_link", "raw_record")
    exclude = ("raw",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        mapped = [field.name for field in Trial._meta.fields if field.name != "raw"]
        return [*mapped, "registry_link", "raw_record"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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
            '<pre style="max-height:30em;overflow:auto">{}</pre>',
            json.dumps(trial.raw, indent=2, ensure_ascii=False),
        )


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
        return obj is None  # the list (for actions), never an edit

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
