"""Sign-in fit for health data: strong passwords, lockout after repeated failures, sessions
that end after inactivity, and optional TOTP two-factor sign-in.

Everything goes through the real /admin/login/ form, as a person (or an attacker) would.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.oath import totp  # type: ignore[import-untyped]
from django_otp.plugins.otp_totp.models import TOTPDevice  # type: ignore[import-untyped]

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def maria() -> User:
    return User.objects.create_user("maria", password=PASSWORD, is_staff=True)


def sign_in(client: Client, username: str, password: str, **extra: str) -> Any:
    return client.post(LOGIN_URL, {"username": username, "password": password, **extra})


def signed_in(client: Client) -> bool:
    """Whether the admin lets this client in now."""
    return client.get("/admin/").status_code == 200


# --- 1. passwords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        pytest.param("Gastric-7", "at least 12 characters", id="too-short"),
        pytest.param("password1234", "too common", id="common"),
        pytest.param("qwertyuiop123", "too common", id="common-keyboard-walk"),
        pytest.param("739104628531", "entirely numeric", id="numeric"),
        pytest.param("maria.rossi.oncology", "too similar", id="like-the-username"),
    ],
)
def test_weak_passwords_are_refused(password: str, message: str) -> None:
    user = User(username="maria.rossi.oncology", email="maria.rossi@example.org")

    with pytest.raises(ValidationError) as refused:
        validate_password(password, user)

    assert message in " ".join(refused.value.messages)


def test_a_long_uncommon_password_is_accepted() -> None:
    validate_password(PASSWORD, User(username="maria"))


def test_the_admin_refuses_a_weak_password_for_a_new_account(admin_client: Client) -> None:
    weak = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": "short",
            "password2": "short",
        },
    )
    strong = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert weak.status_code == 200
    assert "This password is too short" in weak.content.decode()
    assert strong.status_code == 302
    assert User.objects.get(username="newbie").check_password(PASSWORD)


# --- 2. lockout after repeated failures -------------------------------------------------------


def test_repeated_failures_lock_the_account_from_that_address_even_with_the_right_password(
    client: Client, maria: User
) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        failed = sign_in(client, "maria", f"wrong guess {attempt}")
        assert failed.status_code == 200, attempt
        assert "Please enter the correct username and password" in failed.content.decode()

    locked = sign_in(client, "maria", "the last wrong guess")
    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode()

    right = sign_in(client, "maria", PASSWORD)
    assert right.status_code == 429
    assert "Sign-in locked" in right.content.decode()
    assert not signed_in(client)
    # The page names no one and gives no detail of the lock.
    assert "maria" not in right.content.decode()


def test_the_lock_is_per_account_and_address(client: Client, maria: User) -> None:
    User.objects.create_user("jonas", password=PASSWORD, is_staff=True)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "maria", f"wrong guess {attempt}")
    assert sign_in(client, "maria", PASSWORD).status_code == 429

    # A colleague at the same address still signs in; so does maria from her own desk.
    colleague = Client()
    assert sign_in(colleague, "jonas", PASSWORD).status_code == 302
    assert signed_in(colleague)
    elsewhere = Client(REMOTE_ADDR="10.20.30.40")
    assert sign_in(elsewhere, "maria", PASSWORD).status_code == 302
    assert signed_in(elsewhere)


def test_a_successful_sign_in_resets_the_count(client: Client, maria: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        sign_in(client, "maria", f"wrong guess {attempt}")
    assert sign_in(client, "maria", PASSWORD).status_code == 302

    client.post("/admin/logout/")
    for attempt in range(limit - 1):
        assert sign_in(client, "maria", f"wrong again {attempt}").status_code == 200
    assert sign_in(client, "maria", PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "next_url",
    [
        pytest.param("https://evil.example/phish", id="another-host"),
        pytest.param("//evil.example/", id="scheme-relative"),
        pytest.param("", id="empty"),
    ],
)
def test_a_sign_in_with_an_unsafe_next_lands_on_the_workspace(
    client: Client, maria: User, next_url: str
) -> None:
    response = client.post(
        "/admin/login/", {"username": "maria", "password": PASSWORD, "next": next_url}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get(response["Location"]).status_code == 200


def test_one_address_trying_many_accounts_is_locked_out(client: Client, maria: User) -> None:
    """Password spraying: a guess or two on every account stays under each account's limit,
    so the address itself has a limit, over every account."""
    per_account = settings.AXES_FAILURE_LIMIT - 1
    accounts = -(-settings.AXES_ADDRESS_FAILURE_LIMIT // per_account)  # enough to reach it
    tried = 0
    for number in range(accounts):
        for attempt in range(per_account):
            if tried == settings.AXES_ADDRESS_FAILURE_LIMIT - 1:
                break
            failed = sign_in(client, f"user{number}", f"spring-2026-{attempt}")
            assert failed.status_code == 200, (number, attempt)
            tried += 1

    locked = sign_in(client, "someone-else", "summer-2026")
    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode()
    # The right password of an account never tried from there does not open it either ...
    assert sign_in(client, "maria", PASSWORD).status_code == 429
    assert not signed_in(client)
    # ... while the same account signs in from another address.
    elsewhere = Client(REMOTE_ADDR="10.20.30.40")
    assert sign_in(elsewhere, "maria", PASSWORD).status_code == 302


def test_the_lockout_counts_the_address_the_trusted_proxy_saw(settings: Any, maria: User) -> None:
    """Behind a proxy every request comes from its address: the lockout counts the client's
    (config.addresses.client_ip), not the proxy's, and not what the client writes itself."""
    settings.NUM_PROXIES = 1

    def through_proxy(forwarded_for: str, password: str) -> int:
        client = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
        return sign_in(client, "maria", password).status_code

    for attempt in range(settings.AXES_FAILURE_LIMIT):
        # A made-up entry left of the one the proxy added changes nothing.
        assert through_proxy(f"198.51.100.{attempt}, 203.0.113.7", "wrong") in (200, 429)
    assert through_proxy("203.0.113.7", PASSWORD) == 429

    # maria at her own desk, through the same proxy, is another address.
    assert through_proxy("192.0.2.10", PASSWORD) == 302


# --- 2b. the old password on the password change page ---------------------------------------

PASSWORD_CHANGE_URL = "/admin/password_change/"


def change_password(client: Client, old: str, new: str = "a brand new long passphrase") -> Any:
    return client.post(
        PASSWORD_CHANGE_URL,
        {"old_password": old, "new_password1": new, "new_password2": new},
    )


def test_guesses_of_the_old_password_count_as_failed_sign_ins(client: Client, maria: User) -> None:
    """Whoever holds a signed-in session must not get unlimited guesses at its password."""
    assert sign_in(client, "maria", PASSWORD).status_code == 302
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        wrong = change_password(client, f"wrong guess {attempt}")
        assert wrong.status_code == 200, attempt
        assert "Your old password was entered incorrectly" in wrong.content.decode()

    locked = change_password(client, "the last wrong guess")

    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode()
    # The session is over, and the right old password changes nothing while locked.
    assert not signed_in(client)
    assert change_password(client, PASSWORD).status_code != 200
    maria.refresh_from_db()
    assert maria.check_password(PASSWORD)
    # Signing in again is refused too: it is the same account from the same address.
    assert sign_in(client, "maria", PASSWORD).status_code == 429


def test_the_right_old_password_still_changes_it(client: Client, maria: User) -> None:
    assert sign_in(client, "maria", PASSWORD).status_code == 302
    assert change_password(client, "one wrong guess").status_code == 200

    changed = change_password(client, PASSWORD)

    assert changed.status_code == 302
    assert changed["Location"] == "/admin/password_change/done/"
    maria.refresh_from_db()
    assert maria.check_password("a brand new long passphrase")


# --- 3. sessions end after inactivity --------------------------------------------------------


def session_row(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_the_session_ends_with_the_browser_and_after_the_idle_timeout(
    client: Client, maria: User
) -> None:
    before = timezone.now()
    response = sign_in(client, "maria", PASSWORD)
    after = timezone.now()

    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    # A browser-session cookie: no lifetime of its own, gone when the browser closes ...
    assert cookie["max-age"] == ""
    assert cookie["expires"] == ""
    assert cookie["httponly"]
    # ... and on the server the session lives SESSION_COOKIE_AGE past the last request.
    age = datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert before + age <= session_row(client).expire_date <= after + age
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE
    assert settings.SESSION_COOKIE_AGE <= 60 * 60  # idle timeout, not a day-long session


def test_each_request_renews_the_session(client: Client, maria: User) -> None:
    sign_in(client, "maria", PASSWORD)
    almost_over = timezone.now() + datetime.timedelta(seconds=30)
    Session.objects.filter(pk=session_row(client).pk).update(expire_date=almost_over)

    before = timezone.now()
    assert signed_in(client)

    age = datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert session_row(client).expire_date >= before + age


def test_an_idle_session_is_over_and_the_next_page_asks_to_sign_in(
    client: Client, maria: User
) -> None:
    sign_in(client, "maria", PASSWORD)
    assert signed_in(client)
    idle_too_long = timezone.now() - datetime.timedelta(seconds=1)
    Session.objects.filter(pk=session_row(client).pk).update(expire_date=idle_too_long)

    response = client.get("/admin/patients/patient/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- 4. two-factor sign-in (TOTP) -------------------------------------------------------------


def current_token(device: TOTPDevice) -> str:
    token = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{token:0{device.digits}d}"


@pytest.fixture
def maria_device(maria: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=maria, name="phone", confirmed=True)


@override_settings(ADMIN_REQUIRE_OTP=True)
def test_with_two_factor_on_a_password_alone_does_not_open_the_admin(
    client: Client, maria: User
) -> None:
    response = sign_in(client, "maria", PASSWORD)

    assert response.status_code == 200
    assert "Please enter your OTP token." in response.content.decode()
    assert not signed_in(client)


@override_settings(ADMIN_REQUIRE_OTP=True)
def test_with_two_factor_on_a_session_without_a_verified_device_is_refused(
    client: Client, maria: User
) -> None:
    client.force_login(maria)  # signed in, but not through a second factor

    response = client.get("/admin/patients/patient/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@override_settings(ADMIN_REQUIRE_OTP=True)
def test_with_two_factor_on_a_valid_token_opens_the_admin(
    client: Client, maria: User, maria_device: TOTPDevice
) -> None:
    response = sign_in(
        client,
        "maria",
        PASSWORD,
        otp_device=maria_device.persistent_id,
        otp_token=current_token(maria_device),
    )

    assert response.status_code == 302
    assert signed_in(client)


@override_settings(ADMIN_REQUIRE_OTP=True)
def test_with_two_factor_on_a_wrong_token_is_refused(
    client: Client, maria: User, maria_device: TOTPDevice
) -> None:
    wrong = f"{(int(current_token(maria_device)) + 500_000) % 1_000_000:06d}"

    response = sign_in(
        client, "maria", PASSWORD, otp_device=maria_device.persistent_id, otp_token=wrong
    )

    assert response.status_code == 200
    assert "Invalid token" in response.content.decode()
    assert not signed_in(client)


@override_settings(ADMIN_REQUIRE_OTP=True)
def test_another_users_device_does_not_count(
    client: Client, maria: User, maria_device: TOTPDevice
) -> None:
    User.objects.create_user("jonas", password=PASSWORD, is_staff=True)

    response = sign_in(
        client,
        "jonas",
        PASSWORD,
        otp_device=maria_device.persistent_id,
        otp_token=current_token(maria_device),
    )

    assert response.status_code == 200
    assert not signed_in(client)


def test_without_two_factor_a_password_is_enough(client: Client, maria: User) -> None:
    assert not settings.ADMIN_REQUIRE_OTP  # off unless the deployment switches it on
    assert sign_in(client, "maria", PASSWORD).status_code == 302
    assert signed_in(client)


# --- 5. anonymous visitors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/patients/patient/",
        "/admin/patients/site/",
        "/admin/trials/trial/",
        "/admin/auditlog/logentry/",
        "/admin/otp_totp/totpdevice/",
    ],
)
def test_an_anonymous_visitor_is_sent_to_the_login(client: Client, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@override_settings(ADMIN_REQUIRE_OTP=True)
def test_with_two_factor_on_the_login_page_asks_for_the_token(client: Client) -> None:
    page = client.get("/admin/login/").content.decode()

    assert 'name="otp_token"' in page
    assert 'name="username"' in page


def test_with_two_factor_off_the_login_page_asks_for_no_token(client: Client) -> None:
    assert 'name="otp_token"' not in client.get("/admin/login/").content.decode()
