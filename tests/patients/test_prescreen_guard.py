"""The public form's safety layer: honeypot and the signed form token (fill time, its form, its
session, one use), rate limits (429 with Retry-After, every POST counted, GET never),
trusted-proxy handling, body size limit (413), and private (uncacheable, unindexed) responses.

Views defined here stand in for the real form views, wired as they will be wired.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.db import SessionStore
from django.core import signing
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.urls import include, path

from config.addresses import client_ip
from patients.prescreen import guard
from patients.prescreen.guard import (
    FORM_TOKEN_FIELD,
    HONEYPOT_FIELD,
    MESSAGE_EXPIRED,
    MESSAGE_HONEYPOT,
    MESSAGE_TOO_FAST,
    MESSAGE_UNCHECKED,
    MESSAGE_USED,
    Rate,
    body_limit,
    check_submission,
    new_form_token,
    parse_rate,
    private_page,
    rate_limited,
)

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


# --- stand-in views ---------------------------------------------------------------------------


PURPOSE = "test-form"


@private_page
@rate_limited
def form_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        problem = check_submission(request, PURPOSE, new_visitor=True)
        return HttpResponse(problem or "accepted", status=200 if problem is None else 400)
    return JsonResponse({"csrf": get_token(request), "token": new_form_token(request, PURPOSE)})


@body_limit(100)
def small_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("form/", form_view),
    path("small/", small_view),
    # The 429 and 413 pages link back to the form.
    path("prescreen/", include("patients.prescreen.urls")),
]


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def limits(settings: Any) -> Any:
    """Generous limits, for tests to tighten one at a time."""
    settings.PRESCREEN_RATE_PER_IP = "1000/h"
    settings.PRESCREEN_RATE_PER_SESSION = "1000/h"
    settings.NUM_PROXIES = 0
    return settings


def token_issued(
    seconds_ago: float, *, salt: str = guard.TOKEN_SALT, purpose: str = PURPOSE, binding: str = ""
) -> str:
    """A form token as new_form_token() made it ``seconds_ago`` (by default for a visitor
    without a session yet)."""
    signer = signing.TimestampSigner(salt=salt)
    signer.timestamp = lambda: signing.b62_encode(int(time.time() - seconds_ago))  # type: ignore[method-assign]
    return signer.sign(guard._token_value(purpose, binding))


def posted(data: dict[str, str], session: SessionBase | None = None) -> HttpRequest:
    request = RequestFactory().post("/form/", data)
    if session is not None:
        request.session = session
    return request


def checked(data: dict[str, str], **kwargs: Any) -> str | None:
    """What check_submission says of a first-page submission of ``data``."""
    return check_submission(posted(data), PURPOSE, new_visitor=True, **kwargs)


def shown(session: SessionBase | None = None, purpose: str = PURPOSE) -> str:
    """The token a page of form ``purpose`` shows in ``session``."""
    request = RequestFactory().get("/form/")
    if session is not None:
        request.session = session
    return new_form_token(request, purpose)


def new_session() -> SessionBase:
    session = SessionStore()
    session["marker"] = True
    session.create()
    return session


def submission(seconds_ago: float = 10, *, honeypot: str = "") -> dict[str, str]:
    return {FORM_TOKEN_FIELD: token_issued(seconds_ago), HONEYPOT_FIELD: honeypot}


# --- honeypot and token -----------------------------------------------------------------------


def test_a_form_filled_in_at_human_speed_passes() -> None:
    assert checked(submission(seconds_ago=10)) is None
    assert checked(submission(seconds_ago=2 * 3600 - 5)) is None


def test_the_honeypot_filled_in_is_refused_and_the_value_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    data = submission(honeypot="http://cheap-pills.example")

    assert checked(data) == MESSAGE_HONEYPOT
    assert "cheap-pills" not in caplog.text
    assert "honeypot" in caplog.text


def test_a_blank_honeypot_with_spaces_is_still_blank() -> None:
    assert checked(submission(honeypot="  ")) is None


def _tampered_signature(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _backdated(token: str) -> str:
    """The timestamp part moved an hour back, the signature kept."""
    value, stamp, signature = token.split(":")
    return f"{value}:{signing.b62_encode(signing.b62_decode(stamp) - 3600)}:{signature}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: "", id="missing"),
        pytest.param(lambda: "not-a-token", id="garbage"),
        pytest.param(lambda: _tampered_signature(token_issued(10)), id="signature-changed"),
        pytest.param(lambda: _backdated(token_issued(10)), id="timestamp-changed"),
        pytest.param(lambda: token_issued(10, salt="another-form"), id="other-salt"),
        pytest.param(
            lambda: signing.Signer(salt=guard.TOKEN_SALT).sign(guard._token_value(PURPOSE, "")),
            id="no-timestamp",
        ),
        pytest.param(
            lambda: signing.TimestampSigner(salt=guard.TOKEN_SALT).sign("f"), id="no-purpose"
        ),
        pytest.param(lambda: token_issued(10) + "x" * 300, id="too-long"),
    ],
)
def test_a_missing_or_tampered_token_is_refused(make: Any) -> None:
    data = submission()
    data[FORM_TOKEN_FIELD] = make()

    assert checked(data) == MESSAGE_UNCHECKED


def test_no_token_field_at_all_is_refused() -> None:
    assert checked({HONEYPOT_FIELD: ""}) == MESSAGE_UNCHECKED


def test_a_form_older_than_two_hours_has_expired() -> None:
    assert checked(submission(seconds_ago=2 * 3600 + 5)) == MESSAGE_EXPIRED
    assert "expired" in MESSAGE_EXPIRED


def test_the_expiry_follows_the_setting(settings: Any) -> None:
    settings.PRESCREEN_FORM_MAX_AGE_SECONDS = 60

    assert checked(submission(seconds_ago=61)) == MESSAGE_EXPIRED
    assert checked(submission(seconds_ago=50)) is None


def test_a_form_sent_within_three_seconds_is_refused_as_too_fast() -> None:
    assert checked({FORM_TOKEN_FIELD: shown()}) == MESSAGE_TOO_FAST
    assert checked(submission(seconds_ago=1)) == MESSAGE_TOO_FAST
    assert checked(submission(seconds_ago=4)) is None


def test_the_minimum_fill_time_follows_the_setting(settings: Any) -> None:
    settings.PRESCREEN_MIN_FILL_SECONDS = 0

    assert checked({FORM_TOKEN_FIELD: shown()}) is None


def test_tokens_are_signed_with_the_agreed_salt() -> None:
    token = shown()

    value = signing.TimestampSigner(salt="prescreen-form").unsign(token, max_age=60)
    assert value.startswith(f"{PURPOSE}|")
    with pytest.raises(signing.BadSignature):
        signing.TimestampSigner(salt="other").unsign(token)


# --- the token: its form, its session, one use --------------------------------------------------


@pytest.fixture
def quick(settings: Any) -> None:
    """Tokens used as soon as shown."""
    settings.PRESCREEN_MIN_FILL_SECONDS = 0


def test_a_token_is_accepted_once() -> None:
    data = submission()

    assert checked(data) is None
    assert checked(data) == MESSAGE_USED
    assert checked(submission()) is None  # a new page, a new token


@pytest.mark.usefixtures("quick")
def test_a_token_refused_for_another_reason_is_not_used_up() -> None:
    session = new_session()
    data = {FORM_TOKEN_FIELD: shown(session), HONEYPOT_FIELD: ""}

    assert check_submission(posted(data, new_session()), PURPOSE) == MESSAGE_EXPIRED
    assert check_submission(posted(data), PURPOSE, new_visitor=True) == MESSAGE_EXPIRED
    assert check_submission(posted(data, session), "another-form") == MESSAGE_UNCHECKED
    assert check_submission(posted({**data, HONEYPOT_FIELD: "x"}, session), PURPOSE)
    assert check_submission(posted(data, session), PURPOSE) is None


@pytest.mark.usefixtures("quick")
def test_a_token_is_for_the_form_whose_page_showed_it() -> None:
    session = new_session()
    data = {FORM_TOKEN_FIELD: shown(session, purpose="step-2"), HONEYPOT_FIELD: ""}

    assert check_submission(posted(data, session), "step-3") == MESSAGE_UNCHECKED
    assert check_submission(posted(data, session), "step-2") is None


@pytest.mark.usefixtures("quick")
def test_a_token_is_for_the_session_its_page_was_shown_in() -> None:
    session, other = new_session(), new_session()
    data = {FORM_TOKEN_FIELD: shown(session), HONEYPOT_FIELD: ""}

    assert check_submission(posted(data, other), PURPOSE) == MESSAGE_EXPIRED
    assert check_submission(posted(data, other), PURPOSE, new_visitor=True) == MESSAGE_EXPIRED
    assert check_submission(posted(data, session), PURPOSE) is None


@pytest.mark.usefixtures("quick")
def test_a_token_shown_before_there_was_a_session_only_opens_the_first_page() -> None:
    session = new_session()
    page = {FORM_TOKEN_FIELD: shown(None), HONEYPOT_FIELD: ""}

    assert check_submission(posted(page, session), PURPOSE) == MESSAGE_EXPIRED
    assert check_submission(posted(page, session), PURPOSE, new_visitor=True) is None


def test_showing_a_token_starts_no_session() -> None:
    request = RequestFactory().get("/form/")
    request.session = SessionStore()
    new_form_token(request, PURPOSE)

    assert request.session.session_key is None
    assert request.session.is_empty()


def test_the_session_key_is_not_in_the_token() -> None:
    session = new_session()
    token = shown(session)

    assert str(session.session_key) not in token  # (the signed value is plain text)


def test_reuse_is_not_checked_when_the_cache_is_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = submission()
    cache = caches["default"]

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "add", broken)

    assert checked(data) is None
    assert "cache is unavailable" in caplog.text


# --- rate limits ------------------------------------------------------------------------------


def test_parse_rate() -> None:
    assert parse_rate("30/h") == Rate(30, 3600)
    assert parse_rate(" 15 / m ") == Rate(15, 60)
    assert parse_rate("5/10m") == Rate(5, 600)
    assert parse_rate("1/s") == Rate(1, 1)
    assert parse_rate("100/d") == Rate(100, 86400)
    assert parse_rate("") is None
    for bad in ("30", "30/hour", "x/h", "-1/h", "30/w"):
        with pytest.raises(ImproperlyConfigured):
            parse_rate(bad)


def _assert_too_many(response: Any, window: int = 3600) -> None:
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= window
    assert response["Cache-Control"] == "no-store, private"
    assert "no-store" in response["Cache-Control"]
    text = response.content.decode()
    assert "try again" in text
    assert "in about" in text or "minute" in text
    assert 'href="/prescreen/"' in text


def test_every_post_counts_against_the_address_valid_or_not(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = "5/h"
    responses = []
    for number in range(5):
        # New clients: no shared session, only the address is the same.
        data = submission() if number % 2 else {"junk": "x"}
        responses.append(Client().post("/form/", data).status_code)

    assert responses == [400, 200, 400, 200, 400]
    _assert_too_many(Client().post("/form/", submission()))
    # Somebody else is not affected.
    assert Client(REMOTE_ADDR="198.51.100.7").post("/form/", submission()).status_code == 200


def test_get_is_never_limited(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = "2/h"
    limits.PRESCREEN_RATE_PER_SESSION = "2/h"
    client = Client()
    for _ in range(3):
        client.post("/form/", submission())

    assert client.post("/form/", submission()).status_code == 429
    for _ in range(10):
        assert client.get("/form/").status_code == 200


def test_the_session_limit_counts_one_browser_across_addresses(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_SESSION = "3/h"
    client = Client()
    statuses = [
        client.post("/form/", submission(), REMOTE_ADDR=f"192.0.2.{n}").status_code
        for n in range(3)
    ]

    assert statuses == [200, 200, 200]
    _assert_too_many(client.post("/form/", submission(), REMOTE_ADDR="192.0.2.99"))
    # Another browser on the same address goes on.
    assert Client().post("/form/", submission(), REMOTE_ADDR="192.0.2.1").status_code == 200


def test_the_first_post_of_a_new_visitor_starts_a_session_that_counts(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_SESSION = "1/h"
    client = Client()

    assert client.post("/form/", submission()).status_code == 200
    assert "sessionid" in client.cookies
    assert client.post("/form/", submission(), REMOTE_ADDR="192.0.2.50").status_code == 429


def test_posts_failing_csrf_count_too(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = "3/h"
    client = Client(enforce_csrf_checks=True)
    statuses = [client.post("/form/", submission()).status_code for _ in range(3)]

    assert statuses == [403, 403, 403]
    assert client.post("/form/", submission()).status_code == 429


def test_csrf_is_still_checked_with_the_token_accepted(limits: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    csrf = json.loads(client.get("/form/").content)["csrf"]

    assert client.post("/form/", submission()).status_code == 403
    assert client.post("/form/", {**submission(), "csrfmiddlewaretoken": csrf}).status_code == 200


def test_retry_after_is_the_rest_of_the_fixed_window_and_then_it_opens_again(
    limits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits.PRESCREEN_RATE_PER_IP = "2/h"
    start = 1_800_000_000 - 1_800_000_000 % 3600  # the beginning of an hour
    clock = SimpleNamespace(now=start + 600.0)
    monkeypatch.setattr(guard, "time", SimpleNamespace(time=lambda: clock.now))
    client = Client()
    # Invalid submissions (no token): they count all the same.
    assert [client.post("/form/", {}).status_code for _ in range(2)] == [400, 400]

    refused = client.post("/form/", {})
    assert refused.status_code == 429
    assert refused["Retry-After"] == "3000"
    assert "in about 50 minutes" in refused.content.decode()

    clock.now = start + 3599
    assert client.post("/form/", {})["Retry-After"] == "1"

    clock.now = start + 3600
    assert [client.post("/form/", {}).status_code for _ in range(3)] == [400, 400, 429]


def test_the_count_is_atomic_under_concurrency() -> None:
    rate = Rate(25, 3600)
    now = time.time()
    refused: list[int | None] = []
    lock = threading.Lock()

    def hit() -> None:
        result = guard._count("test", "same-visitor", rate, now)
        with lock:
            refused.append(result)

    threads = [threading.Thread(target=hit) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(result is not None for result in refused) == 15


def test_addresses_and_session_keys_are_stored_only_hashed(
    limits: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    limits.PRESCREEN_RATE_PER_IP = "1/h"
    cache = caches["default"]
    keys: list[str] = []
    add = cache.add

    def recording_add(key: str, *args: Any, **kwargs: Any) -> bool:
        keys.append(key)
        return add(key, *args, **kwargs)

    monkeypatch.setattr(cache, "add", recording_add)
    client = Client(REMOTE_ADDR="203.0.113.77")
    client.post("/form/", submission(honeypot="spam"))
    client.post("/form/", submission())
    session_key = client.cookies["sessionid"].value

    assert any(key.startswith("prescreen:rate:ip:") for key in keys)
    assert any(key.startswith("prescreen:rate:session:") for key in keys)
    assert not any("203.0.113.77" in key or session_key in key for key in keys)
    assert "203.0.113.77" not in caplog.text
    assert "spam" not in caplog.text


def test_a_cache_outage_lets_the_form_work(
    limits: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache down")

    monkeypatch.setattr(guard, "_count", broken)

    assert Client().post("/form/", submission()).status_code == 200
    assert "cache is unavailable" in caplog.text


def test_no_limit_when_the_rates_are_empty(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = ""
    limits.PRESCREEN_RATE_PER_SESSION = ""
    client = Client()

    assert all(client.post("/form/", submission()).status_code == 200 for _ in range(20))


# --- the visitor's address --------------------------------------------------------------------


def _request(remote: str, forwarded: str | None = None) -> HttpRequest:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/form/", **extra)  # type: ignore[arg-type]


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(settings: Any) -> None:
    settings.NUM_PROXIES = 0

    assert client_ip(_request("10.0.0.5", "203.0.113.9")) == "10.0.0.5"


def test_x_forwarded_for_is_read_behind_a_trusted_proxy(settings: Any) -> None:
    settings.NUM_PROXIES = 1

    assert client_ip(_request("10.0.0.5", "203.0.113.9")) == "203.0.113.9"
    # What the client wrote itself (left of the proxy's entry) is not believed.
    assert client_ip(_request("10.0.0.5", "1.2.3.4, 203.0.113.9")) == "203.0.113.9"
    # No header (a request that bypassed the proxy): the connection's address.
    assert client_ip(_request("10.0.0.5")) == "10.0.0.5"


def test_two_proxies_take_the_entry_the_outer_one_added(settings: Any) -> None:
    settings.NUM_PROXIES = 2

    assert client_ip(_request("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.9")) == "203.0.113.9"
    assert client_ip(_request("10.0.0.5", "203.0.113.9")) == "10.0.0.5"


def test_spoofed_x_forwarded_for_does_not_escape_the_address_limit(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = "3/h"
    statuses = [
        Client().post("/form/", submission(), HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


def test_behind_a_trusted_proxy_visitors_are_counted_apart(limits: Any) -> None:
    limits.NUM_PROXIES = 1
    limits.PRESCREEN_RATE_PER_IP = "2/h"

    def send(forwarded: str) -> int:
        return (
            Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
            .post("/form/", submission())
            .status_code
        )

    assert [send("203.0.113.1"), send("203.0.113.1"), send("203.0.113.1")] == [200, 200, 429]
    assert send("203.0.113.2") == 200
    # Rotating a made-up first entry does not help.
    assert send("1.1.1.1, 203.0.113.1") == 429


def test_ipv6_visitors_are_counted_by_their_64_range(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = "2/h"

    def send(address: str) -> int:
        return Client(REMOTE_ADDR=address).post("/form/", submission()).status_code

    assert send("2001:db8:1:2::1") == 200
    assert send("2001:db8:1:2::ffff") == 200
    assert send("2001:db8:1:2:abcd::9") == 429
    assert send("2001:db8:1:3::1") == 200


# --- body size --------------------------------------------------------------------------------


def test_a_body_over_the_limit_gets_a_friendly_413(limits: Any) -> None:
    big = {**submission(), "notes": "x" * (16 * 1024)}
    response = Client().post("/form/", big)

    assert response.status_code == 413
    text = response.content.decode()
    assert "Too much was sent" in text
    assert 'href="/prescreen/"' in text
    assert response["Cache-Control"] == "no-store, private"
    assert Client().post("/form/", {**submission(), "notes": "x" * 1000}).status_code == 200


def test_a_body_over_django_own_limit_still_gets_the_413_page(limits: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024
    client = Client(enforce_csrf_checks=True)
    response = client.post("/form/", {**submission(), "notes": "x" * (64 * 1024)})

    assert response.status_code == 413


def test_the_body_limit_follows_the_setting(limits: Any) -> None:
    limits.PRESCREEN_MAX_BODY_BYTES = 2000

    assert Client().post("/form/", {**submission(), "notes": "x" * 2100}).status_code == 413


def test_oversized_posts_count_against_the_limit(limits: Any) -> None:
    limits.PRESCREEN_RATE_PER_IP = "2/h"
    big = {"notes": "x" * (20 * 1024)}
    statuses = [Client().post("/form/", big).status_code for _ in range(3)]

    assert statuses == [413, 413, 429]


def test_body_limit_decorator_on_its_own() -> None:
    client = Client()

    assert client.post("/small/", {"a": "x" * 10}).status_code == 200
    assert client.post("/small/", {"a": "x" * 200}).status_code == 413
    assert client.get("/small/").status_code == 200


def test_a_content_length_that_is_not_a_number_is_refused() -> None:
    request = RequestFactory().post("/form/", {"a": "b"})
    request.META["CONTENT_LENGTH"] = "lots"

    assert guard._body_too_large(request, 100)


# --- private pages ----------------------------------------------------------------------------


def test_private_pages_are_not_cached_indexed_or_sent_as_referrer(limits: Any) -> None:
    for response in (Client().get("/form/"), Client().post("/form/", submission())):
        assert response["Cache-Control"] == "no-store, private"
        assert response["X-Robots-Tag"] == "noindex, nofollow"
        assert response["Referrer-Policy"] == "same-origin"


def test_the_retry_time_in_words() -> None:
    assert guard._in_words(30) == "in a minute or two"
    assert guard._in_words(600) == "in about 10 minutes"
    assert guard._in_words(3600) == "in about 60 minutes"
    assert guard._in_words(3 * 3600) == "in about 3 hours"
    assert guard._in_words(86400) == "in about 24 hours"
