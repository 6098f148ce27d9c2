"""The coordinator workspace: Django's admin site with the dashboard as its index page, and
two-factor sign-in (TOTP, django-otp): the rule and its forms are ``config.two_factor``'s."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login  # type: ignore[import-untyped]

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
    # The sign-in form with the authenticator code (its form is set in login()).
    login_template = "admin/two_factor_login.html"

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def served(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in ADMIN_METHODS:
                return HttpResponseNotAllowed(ADMIN_METHODS)
            from config import two_factor

            if two_factor.enrolment_due(request):
                # Signed in with the password, but bound to a second factor it has not set up:
                # no page but the enrolment page, which brings it back here.
                return redirect_to_login(
                    request.get_full_path(), reverse("admin:two_factor_enrol"), "next"
                )
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

    def get_urls(self) -> list[Any]:
        return [
            path("two-factor/", self.two_factor_enrol, name="two_factor_enrol"),
            *super().get_urls(),
        ]

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        from config import two_factor

        if request.method == "GET" and two_factor.enrolment_due(request):
            return HttpResponseRedirect(reverse("admin:two_factor_enrol"))
        # Not a class attribute: the form's module needs the apps loaded, this one does not.
        self.login_form = two_factor.TwoFactorAuthenticationForm
        return super().login(request, extra_context)

    @method_decorator(never_cache)
    def two_factor_enrol(self, request: HttpRequest) -> HttpResponseBase:
        """Setting up the authenticator app: its QR code (or key) and a first code from it,
        which confirms the device and verifies this sign-in."""
        from config import two_factor

        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponseNotAllowed(("GET", "HEAD", "POST"))
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if request.method == "POST" and "sign_out" in request.POST:
            logout(request)
            return HttpResponseRedirect(reverse("admin:login"))
        index = reverse("admin:index", current_app=self.name)
        if two_factor.verified(user) or two_factor.confirmed_devices(user):
            return HttpResponseRedirect(index)  # a device already: its code is asked at sign-in
        device = two_factor.pending_device(user)
        form = two_factor.EnrolForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            if two_factor.verify([device], form.cleaned_data["otp_token"]) is not None:
                two_factor.confirm(device)
                otp_login(request, device)
                wanted = request.GET.get("next", "")
                safe = url_has_allowed_host_and_scheme(
                    wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
                )
                return HttpResponseRedirect(wanted if wanted and safe else index)
            form.add_error(
                "otp_token",
                "That code is not right, or it has expired: enter the one the app shows now.",
            )
        context = {
            **self.each_context(request),
            "title": "Set up two-factor sign-in",
            "form": form,
            "device": device,
            "qr_code": two_factor.qr_code_data_uri(device),
            "key": two_factor.key_text(device),
            "required": two_factor.required(user),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/two_factor_enrol.html", context)

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
        from config import two_factor

        return super().has_permission(request) and two_factor.satisfied(request.user)

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
