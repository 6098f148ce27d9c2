"""The coordinator workspace: Django's admin site with the dashboard as its index page, and
two-factor sign-in (TOTP, django-otp) when ``ADMIN_REQUIRE_OTP`` is on."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.core.exceptions import FieldDoesNotExist
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse

from config.addresses import client_ip

# The methods admin pages serve; any other (OPTIONS, TRACE, PUT ...) is refused before a page
# is rendered, so that no response shows patient data unrecorded.
ADMIN_METHODS = ("GET", "HEAD", "POST")
_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


class WorkspaceAdminSite(admin.AdminSite):
    site_header = "Trial matching: coordinator workspace"
    site_title = "Trial matching"
    index_title = "Coordinator workspace"

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def served(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in ADMIN_METHODS:
                return HttpResponseNotAllowed(ADMIN_METHODS)
            return inner(request, *args, **kwargs)

        return cast(_View, served)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # Read per request, so that the setting can be switched without a new site object.
        if settings.ADMIN_REQUIRE_OTP:
            # django-otp's admin form (staff check kept) and its template with the token field.
            from django_otp.admin import (  # type: ignore[import-untyped]
                OTPAdminAuthenticationForm,
            )

            self.login_form = OTPAdminAuthenticationForm
            self.login_template = "otp/admin111/login.html"
        else:
            self.login_form = None
            self.login_template = None
        return super().login(request, extra_context)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        """Django's page, with the old password counted as a sign-in (``config.lockout``).
        When the guesses lock the account out, the session ends with them: whoever guesses
        its password is not to go on using it."""
        from django.contrib.auth.views import PasswordChangeView

        from config.lockout import CountedPasswordChangeForm

        request.current_app = self.name
        response = PasswordChangeView.as_view(
            form_class=functools.partial(CountedPasswordChangeForm, request=request),
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)
        if getattr(request, "axes_locked_out", False):
            logout(request)  # django-axes' middleware then answers with the lockout page
        return response

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        if settings.ADMIN_REQUIRE_OTP:
            return bool(request.user.is_verified())  # type: ignore[union-attr]
        return True

    def autocomplete_view(self, request: HttpRequest) -> HttpResponse:
        """Django's autocomplete, with the patients it offered recorded as read (it shows
        MRNs): every view of patient data is in the audit log."""
        response = super().autocomplete_view(request)
        if response.status_code != 200:
            return response
        try:
            source = apps.get_model(request.GET["app_label"], request.GET["model_name"])
            field = source._meta.get_field(request.GET["field_name"])
        except (KeyError, LookupError, FieldDoesNotExist):
            return response
        from patients.audit import record_access
        from patients.models import Patient

        if getattr(field.remote_field, "model", None) is Patient:
            ids = [int(item["id"]) for item in json.loads(response.content)["results"]]
            record_access(
                Patient.objects.filter(pk__in=ids).only("pk"),
                actor=request.user,
                purpose="admin: autocomplete",
                remote_addr=client_ip(request),
            )
        return response

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        from patients.dashboard import dashboard_context

        context = {**dashboard_context(request), **(extra_context or {})}
        return super().index(request, context)
