"""The coordinator workspace: Django's admin site with the dashboard as its index page, and
two-factor sign-in (TOTP, django-otp) when ``ADMIN_REQUIRE_OTP`` is on."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse

from config.addresses import client_ip

# The methods admin pages serve; any other (OPTIONS, TRACE, PUT ...) is refused before a page
# is rendered, so that no response shows patient data unrecorded.
ADMIN_METHODS = ("GET", "HEAD", "POST")
_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


logger = logging.getLogger(__name__)

# What a list filter raises when it is given a value its field cannot take: Django's own
# filters turn that into the list's "invalid filter" answer (?e=1), but not every filter does
# (a date hierarchy's year of 30 digits overflows, a third-party filter casts to int).
FILTER_VALUE_ERRORS = (ValueError, TypeError, OverflowError, ValidationError)


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
            if getattr(view, "__name__", "") != "changelist_view" or not (
                request.GET.keys() - {ERROR_FLAG}
            ):
                return inner(request, *args, **kwargs)
            try:
                return inner(request, *args, **kwargs)
            except FILTER_VALUE_ERRORS as exc:
                logger.warning("admin list: a filter value it cannot use (%s)", type(exc).__name__)
                return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

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
