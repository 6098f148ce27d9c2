"""Lockout after failed sign-ins: django-axes, with two counts over the same failed attempts.

* per account and address: ``AXES_FAILURE_LIMIT`` failures for one username from one address
  lock that pair (someone guessing one account's password);
* per address: ``AXES_ADDRESS_FAILURE_LIMIT`` failures from one address, whatever the
  usernames, lock the address (password spraying: a guess or two on every account, each
  staying under its own limit). It is higher than the first, because a hospital's staff often
  share one outgoing address.

Both count within ``AXES_COOLOFF_HOURS`` and use the address of ``config.addresses.client_ip``.
A failure is whatever ``django.contrib.auth.authenticate`` refuses: the sign-in form, and the
old password on the password change page (``config.admin_site``).
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold  # type: ignore[import-untyped]
from axes.handlers.database import AxesDatabaseHandler  # type: ignore[import-untyped]
from axes.helpers import get_client_username  # type: ignore[import-untyped]
from axes.models import AccessAttempt  # type: ignore[import-untyped]
from axes.signals import user_locked_out  # type: ignore[import-untyped]
from django.conf import settings
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from config.addresses import client_ip


def lockout_address(request: HttpRequest) -> str | None:
    """The address django-axes counts under (``AXES_CLIENT_IP_CALLABLE``); None if unknown."""
    return client_ip(request) or None


class LockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler with the per-address limit added to its own."""

    def address_locked(self, request: Any) -> bool:
        address = getattr(request, "axes_ip_address", None)
        if not address:
            return False
        failures = AccessAttempt.objects.filter(
            ip_address=address, attempt_time__gte=get_cool_off_threshold(request)
        ).aggregate(total=Sum("failures_since_start"))["total"]
        return (failures or 0) >= settings.AXES_ADDRESS_FAILURE_LIMIT

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        return super().is_locked(request, credentials) or self.address_locked(request)

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or request.axes_locked_out or not self.address_locked(request):
            return
        # As the handler does when an account's own limit is reached: the middleware answers
        # with the lockout page.
        request.axes_locked_out = True
        request.axes_credentials = credentials
        user_locked_out.send(
            "axes",
            request=request,
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,
        )


class CountedPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's password change form, with the old password checked by ``authenticate``:
    a wrong one is a failed sign-in of that account from that address, and while either is
    locked out no old password is accepted, as at the sign-in form."""

    def __init__(self, user: Any, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    @sensitive_variables("old_password")
    def clean_old_password(self) -> str:
        old_password: str = self.cleaned_data["old_password"]
        checked = authenticate(
            self.request, username=self.user.get_username(), password=old_password
        )
        if checked is None or checked.pk != self.user.pk:
            raise ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old_password
