"""Two-factor sign-in: a code from an authenticator app (TOTP, django-otp) besides the password.

Who must use it (``required``): superusers and site admins always; coordinators too while
``TWO_FACTOR_COORDINATORS`` is on (the default). ``TWO_FACTOR_DEBUG_WAIVER`` lifts the rule for
the local demo (``make run``), with ``DEBUG`` on only: the settings refuse it otherwise, and it
is read together with ``DEBUG`` here as well.

Where it is enforced (``config.admin_site``):

* the sign-in form asks every account with a confirmed device for its code;
* an account that must use it but has no device yet is signed in to enrol only: every workspace
  page sends it to the enrolment page (a QR code and the key for the app; a code from the app
  confirms the device and completes the sign-in) until it has;
* a session of an account that must use it opens neither the workspace nor the API (session
  authentication, ``config.api_auth``) unless its sign-in was verified with a device.

Whoever holds the password of an account not yet enrolled can enrol it: accounts are told to
enrol at their first sign-in, and a superuser who deletes an account's device (admin: TOTP
devices) sends it to enrol again, e.g. after a lost phone.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.db import transaction
from django.http import HttpRequest

DEVICE_NAME = "authenticator app"


def waived() -> bool:
    return bool(settings.DEBUG and settings.TWO_FACTOR_DEBUG_WAIVER)


def required(user: Any) -> bool:
    """Whether ``user`` must sign in with a second factor to use the workspace."""
    if not (user.is_authenticated and user.is_active and user.is_staff) or waived():
        return False
    if user.is_superuser or settings.TWO_FACTOR_COORDINATORS:
        return True
    from patients.access import SITE_ADMIN_GROUP

    cached = getattr(user, "_is_site_admin", None)
    if cached is None:
        cached = user.groups.filter(name=SITE_ADMIN_GROUP).exists()
        user._is_site_admin = cached  # per request: the user object lives that long
    return bool(cached)


def verified(user: Any) -> bool:
    """Whether this request's sign-in was verified with a device (django-otp's middleware)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified is not None and is_verified())


def satisfied(user: Any) -> bool:
    """The rule holds for this request's user: not required, or verified."""
    return not required(user) or verified(user)


def confirmed_devices(user: Any) -> list[Any]:
    from django_otp.plugins.otp_totp.models import TOTPDevice  # type: ignore[import-untyped]

    return list(TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk"))


def enrolment_due(request: HttpRequest) -> bool:
    """Signed in with a password, bound to use a second factor, and no device yet."""
    user = request.user
    return required(user) and not verified(user) and not confirmed_devices(user)


def verify(devices: list[Any], token: str) -> Any:
    """The device among ``devices`` that accepts ``token`` (each with django-otp's throttle
    after failures), or None."""
    token = "".join(token.split())
    if not token.isdigit():
        return None
    with transaction.atomic():
        for device in devices:
            device = type(device).objects.select_for_update().get(pk=device.pk)
            if device.verify_token(token):
                return device
    return None


CODE_ATTRS = {"autocomplete": "one-time-code", "inputmode": "numeric", "size": "10"}


class TwoFactorAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form with the authenticator code, asked of every account that has
    a confirmed device (an account without one may still have to enrol after signing in)."""

    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=16,
        strip=True,
        widget=forms.TextInput(attrs=CODE_ATTRS),
        help_text="The 6-digit code your authenticator app shows for this service. Leave it "
        "empty if you have not set up two-factor sign-in yet.",
    )
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "code_required": "Enter the code of your authenticator app as well.",
        "code_invalid": "That code is not right, or it has expired: enter the one your "
        "authenticator app shows now.",
    }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()  # the password (django-axes counts failures) and staff status
        user: Any = self.get_user()
        if user is None:
            return cleaned
        devices = confirmed_devices(user)
        if not devices:
            return cleaned
        token = cleaned.get("otp_token") or ""
        if not token:
            raise forms.ValidationError(self.error_messages["code_required"], "code_required")
        device = verify(devices, token)
        if device is None:
            raise forms.ValidationError(self.error_messages["code_invalid"], "code_invalid")
        # django-otp's user_logged_in receiver keeps the device in the session: verified.
        user.otp_device = device
        return cleaned


class EnrolForm(forms.Form):
    otp_token = forms.CharField(
        label="Code from the app",
        max_length=16,
        widget=forms.TextInput(attrs={**CODE_ATTRS, "autofocus": True}),
    )


def pending_device(user: Any) -> Any:
    """The device being enrolled: the same key on every visit until a code confirms it."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def confirm(device: Any) -> None:
    """The device is the account's: confirmed, and any other pending one dropped."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    type(device).objects.filter(user_id=device.user_id, confirmed=False).delete()


def key_text(device: Any) -> str:
    """The key as an authenticator app takes it typed in: base32, in groups of four."""
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[start : start + 4] for start in range(0, len(key), 4))


def qr_code_data_uri(device: Any) -> str:
    """The device's otpauth:// address as a QR code, an SVG image inside a data: address
    (the Content-Security-Policy allows images from data:, nothing from elsewhere)."""
    import qrcode  # type: ignore[import-untyped]
    import qrcode.image.svg  # type: ignore[import-untyped]

    out = io.BytesIO()
    qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage).save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()
