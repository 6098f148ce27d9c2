"""Two-factor sign-in in tests: authenticator devices, the codes they accept, enrolment.

``tests/conftest.py`` makes ``Client.force_login`` a complete sign-in, second factor included
(``force_login_verified``), since most tests are about what a signed-in member of staff sees;
``force_login_password_only`` is a session that never gave a code.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY  # type: ignore[import-untyped]
from django_otp.oath import totp  # type: ignore[import-untyped]
from django_otp.plugins.otp_totp.models import TOTPDevice  # type: ignore[import-untyped]

ENROL_URL = "/admin/two-factor/"
_django_force_login = Client.force_login


def add_device(user: AbstractBaseUser, *, name: str = "phone") -> Any:
    """A confirmed authenticator device of ``user``, as enrolment leaves it."""
    return TOTPDevice.objects.create(user=user, name=name, confirmed=True)


def current_code(device: Any) -> str:
    """A code ``device`` accepts now. A device takes each code once; a test signing in twice
    within the same 30 seconds is given the code again as if half a minute had passed."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    device.refresh_from_db()
    token = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{token:0{device.digits}d}"


def code_for(user: AbstractBaseUser) -> str | None:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return current_code(device) if device is not None else None


def wrong_code(device: Any) -> str:
    return f"{(int(current_code(device)) + 500_000) % 1_000_000:06d}"


def enrol(client: Client) -> Any:
    """Through the enrolment page, as a person with an authenticator app: the key it shows,
    then the code the app makes of it. Returns the confirmed device."""
    page = client.get(ENROL_URL)
    assert page.status_code == 200, page
    shown = re.search(r'id="two-factor-key">([A-Z2-7 ]+)<', page.content.decode())
    assert shown, "the page shows the key"
    device = TOTPDevice.objects.get(pk=page.context["device"].pk)
    assert device.bin_key == _base32(shown.group(1))
    confirmed = client.post(ENROL_URL, {"otp_token": current_code(device)})
    assert confirmed.status_code == 302, confirmed.content[:2000]
    device.refresh_from_db()
    assert device.confirmed
    return device


def code_from_key(key: str) -> str:
    """What an authenticator app shows now for ``key`` typed into it (as the page shows it)."""
    return f"{totp(_base32(key)):06d}"


def _base32(text: str) -> bytes:
    key = text.replace(" ", "")
    return base64.b32decode(key + "=" * (-len(key) % 8))


def force_login_verified(client: Client, user: Any, backend: str | None = None) -> None:
    """``force_login``, second factor included: the session is verified with a device of
    the user's (made for the purpose when it has none)."""
    _django_force_login(client, user, backend)
    if not getattr(user, "is_staff", False):
        return
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or add_device(
        user, name="test authenticator"
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def force_login_password_only(client: Client, user: Any) -> None:
    """A session as after the password alone: no device verified it."""
    _django_force_login(client, user)
