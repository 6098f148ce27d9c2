"""Sign-in fit for health data: strong passwords, lockout after repeated failures, sessions
that end after inactivity, and TOTP two-factor sign-in (required of superusers and site admins,
and of coordinators by default).

Everything goes through the real /admin/login/ form, as a person (or an attacker) would.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice  # type: ignore[import-untyped]

from patients.access import COORDINATOR_GROUP, SITE_ADMIN_GROUP
from tests.two_factor import (
    ENROL_URL,
    add_device,
    code_for,
    current_code,
    enrol,
    force_login_password_only,
    wrong_code,
)

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def maria() -> User:
    """A coordinator with her authenticator app set up."""
    user = User.objects.create_user("maria", password=PASSWORD, is_staff=True)
    add_device(user)
    return user


def sign_in(client: Client, username: str, password: str, **extra: str) -> Any:
    """The sign-in form, with the account's current authenticator code unless ``extra``
    gives one (or the account has no device)."""
    fields = {"username": username, "password": password, **extra}
    if "otp_token" not in fields:
        user = User.objects.filter(username=username).first()
        code = code_for(user) if user is not None else None
        if code is not None:
            fields["otp_token"] = code
    return client.post(LOGIN_URL, fields)


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
    add_device(User.objects.create_user("jonas", password=PASSWORD, is_staff=True))
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
        "/admin/login/",
        {"username": "maria", "password": PASSWORD, "otp_token": code_for(maria), "next": next_url},
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


@pytest.fixture
def sara() -> User:
    """A site admin who has not set up two-factor sign-in yet."""
    user = User.objects.create_user("sara", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=SITE_ADMIN_GROUP))
    return user


def new_account(role: str) -> User:
    """An account of ``role`` as create_coordinator makes it, without a device."""
    user = User.objects.create_user(
        f"new-{role.replace(' ', '-')}",
        password=PASSWORD,
        is_staff=True,
        is_superuser=role == "superuser",
    )
    if role != "superuser":
        group = SITE_ADMIN_GROUP if role == "site admin" else COORDINATOR_GROUP
        user.groups.add(Group.objects.get(name=group))
    return user


def test_the_defaults_require_two_factor_of_every_role() -> None:
    assert settings.TWO_FACTOR_COORDINATORS
    assert not settings.TWO_FACTOR_DEBUG_WAIVER


def test_the_sign_in_page_asks_for_the_authenticator_code(client: Client) -> None:
    page = client.get("/admin/login/").content.decode()

    assert 'name="username"' in page
    assert 'name="otp_token"' in page
    assert '<label for="id_otp_token">Authenticator code:</label>' in page
    assert 'autocomplete="one-time-code"' in page


@pytest.mark.parametrize("role", ["superuser", "site admin", "coordinator"])
def test_an_account_without_a_device_is_sent_to_enrol_and_gets_nothing_else(
    client: Client, role: str
) -> None:
    user = new_account(role)
    signed = sign_in(client, user.username, PASSWORD)
    assert signed.status_code == 302  # the password was right ...

    # ... but every workspace page sends the account to set up its authenticator first.
    for url in ("/admin/", "/admin/patients/patient/", "/admin/password_change/"):
        sent = client.get(url)
        assert sent.status_code == 302, url
        assert sent["Location"] == f"{ENROL_URL}?next={url}", url
    assert client.get("/admin/login/")["Location"].startswith(ENROL_URL)
    # Nor does the session open the API.
    assert client.get("/api/v1/patients/").status_code == 401
    assert client.get(ENROL_URL).status_code == 200


def test_with_coordinators_exempt_only_coordinators_sign_in_with_a_password(
    client: Client, settings: Any, sara: User
) -> None:
    settings.TWO_FACTOR_COORDINATORS = False
    coordinator = new_account("coordinator")

    assert sign_in(client, coordinator.username, PASSWORD).status_code == 302
    assert signed_in(client)
    client.post("/admin/logout/")
    assert sign_in(client, "sara", PASSWORD).status_code == 302
    assert client.get("/admin/")["Location"] == f"{ENROL_URL}?next=/admin/"


def test_enrolment_confirms_the_device_with_a_code_and_opens_the_workspace(
    client: Client, sara: User
) -> None:
    sign_in(client, "sara", PASSWORD)
    page = client.get(f"{ENROL_URL}?next=/admin/patients/patient/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]  # the page shows a secret
    assert 'src="data:image/svg+xml;base64,' in html  # the QR code, from no other host
    assert 'id="two-factor-key"' in html
    device = page.context["device"]
    assert not device.confirmed
    # The same key on every visit, until it is confirmed.
    assert client.get(ENROL_URL).context["device"].pk == device.pk

    wrong = client.post(ENROL_URL, {"otp_token": wrong_code(device)})
    assert wrong.status_code == 200
    assert "That code is not right" in wrong.content.decode()
    assert not signed_in(client)
    # After a wrong code django-otp makes the next one wait (a second, doubling each time).
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - datetime.timedelta(seconds=2)
    )

    right = client.post(
        f"{ENROL_URL}?next=/admin/patients/patient/", {"otp_token": current_code(device)}
    )

    assert right.status_code == 302
    assert right["Location"] == "/admin/patients/patient/"
    assert signed_in(client)
    device.refresh_from_db()
    assert device.confirmed
    assert list(TOTPDevice.objects.filter(user=sara)) == [device]
    # From now on sara's sign-in takes the code: the password alone is refused.
    again = Client()
    refused = sign_in(again, "sara", PASSWORD, otp_token="")
    assert refused.status_code == 200
    assert "Enter the code of your authenticator app" in refused.content.decode()
    assert not signed_in(again)
    assert sign_in(again, "sara", PASSWORD).status_code == 302
    assert signed_in(again)
    # The enrolment page is no way round it either.
    assert client.get(ENROL_URL)["Location"] == "/admin/"


def test_the_enrolment_page_signs_out(client: Client, sara: User) -> None:
    sign_in(client, "sara", PASSWORD)

    response = client.post(ENROL_URL, {"sign_out": "1"})

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert client.get(ENROL_URL)["Location"].startswith("/admin/login/")


def test_an_enrolled_account_needs_its_code(client: Client, maria: User) -> None:
    response = sign_in(client, "maria", PASSWORD, otp_token="")

    assert response.status_code == 200
    assert "Enter the code of your authenticator app" in response.content.decode()
    assert not signed_in(client)


def test_a_wrong_code_is_refused(client: Client, maria: User) -> None:
    wrong = wrong_code(TOTPDevice.objects.get(user=maria))

    response = sign_in(client, "maria", PASSWORD, otp_token=wrong)

    assert response.status_code == 200
    assert "That code is not right" in response.content.decode()
    assert not signed_in(client)


def test_another_users_code_does_not_count(client: Client, maria: User) -> None:
    jonas = User.objects.create_user("jonas", password=PASSWORD, is_staff=True)
    add_device(jonas)

    response = sign_in(client, "jonas", PASSWORD, otp_token=code_for(maria) or "")

    assert response.status_code == 200
    assert not signed_in(client)


def test_a_session_without_a_verified_device_is_refused(client: Client, maria: User) -> None:
    force_login_password_only(client, maria)  # signed in, but not through a second factor

    response = client.get("/admin/patients/patient/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/api/v1/patients/").status_code == 401


def test_the_debug_waiver_applies_with_debug_on_only(
    client: Client, settings: Any, sara: User
) -> None:
    """make run signs in the demo accounts with passwords alone; nothing else can."""
    settings.TWO_FACTOR_DEBUG_WAIVER = True
    settings.DEBUG = False
    sign_in(client, "sara", PASSWORD)
    assert client.get("/admin/")["Location"] == f"{ENROL_URL}?next=/admin/"

    settings.DEBUG = True

    assert signed_in(client)


def test_first_sign_in_of_a_new_coordinator_ends_enrolled(client: Client) -> None:
    user = new_account("coordinator")
    sign_in(client, user.username, PASSWORD)

    device = enrol(client)

    assert signed_in(client)
    assert device.user == user


def test_no_one_reads_another_accounts_key_in_the_admin(client: Client, maria: User) -> None:
    root = User.objects.create_superuser("root", password=PASSWORD)
    client.force_login(root)
    device = TOTPDevice.objects.get(user=maria)

    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()

    assert device.key not in page


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
        "/admin/two-factor/",
    ],
)
def test_an_anonymous_visitor_is_sent_to_the_login(client: Client, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"
