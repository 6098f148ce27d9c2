"""Safety of the public pre-screening form: bots, floods, oversized bodies and caching.

* ``new_form_token(request, purpose)`` / ``check_submission(request, purpose)``: each page of
  the form carries a signed token (``FORM_TOKEN_FIELD``) naming that form (a step, the contact
  form), the session it was shown in and a random nonce, with the time; and an empty honeypot
  field (``HONEYPOT_FIELD``). A submission is refused when the honeypot is filled in, the
  token was tampered with, belongs to another form or another session, was accepted before
  (each token is good once: the nonces used are kept in the cache until the token would have
  expired anyway), the form is older than ``PRESCREEN_FORM_MAX_AGE_SECONDS`` or was sent
  sooner than ``PRESCREEN_MIN_FILL_SECONDS`` after it was shown (no person answers that fast).
  So every submission needs its own page view, in its own session. This replaces a
  third-party CAPTCHA.
* ``@rate_limited``: every POST (valid or not, CSRF failures included) counts against a
  per-address and a per-session limit (``PRESCREEN_RATE_PER_IP``, ``PRESCREEN_RATE_PER_SESSION``,
  "N/s|m|h|d") kept in the cache in fixed windows; over a limit the visitor gets a kind 429 page
  with ``Retry-After``. It also refuses bodies over ``PRESCREEN_MAX_BODY_BYTES`` (413) and then
  checks CSRF itself, so that the count and the size check come first.
* ``referral_retry_after(request, contact_keys)``: requests to be contacted counted per
  address (``PRESCREEN_REFERRAL_RATE_PER_IP``) and per email address and phone number
  (``PRESCREEN_REFERRAL_RATE_PER_CONTACT``), the same way; ``contact_lock`` keeps two
  simultaneous requests with the same contact details from both being stored.
* ``@body_limit(max_bytes)``: the size check alone.
* ``@private_page``: responses that are never cached, indexed, or sent on as a referrer.

Nothing here logs what a visitor submitted or their address. Addresses and session keys are
stored only as keyed hashes (HMAC with ``SECRET_KEY``) inside cache keys and tokens. With
several web processes the cache (``PRESCREEN_RATE_CACHE``) must be shared, or each process
counts, and remembers used tokens, on its own.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.utils.crypto import salted_hmac
from django.views.decorators.csrf import csrf_protect

from config.addresses import client_ip

logger = logging.getLogger(__name__)

FORM_TOKEN_FIELD = "form_token"  # noqa: S105 - a field name, not a secret
HONEYPOT_FIELD = "website"
TOKEN_SALT = "prescreen-form"  # noqa: S105 - a namespace; the key is SECRET_KEY

DEFAULT_FORM_MAX_AGE_SECONDS = 2 * 3600
DEFAULT_MIN_FILL_SECONDS = 3
DEFAULT_RATE_PER_IP = "60/h"
DEFAULT_RATE_PER_SESSION = "40/h"
DEFAULT_MAX_BODY_BYTES = 16 * 1024
DEFAULT_REFERRAL_RATE_PER_IP = "3/h"
DEFAULT_REFERRAL_RATE_PER_CONTACT = "3/d"
_LOCK_SECONDS = 60  # longer than storing one referral takes

# What the visitor reads when a submission is refused (shown above the form).
MESSAGE_HONEYPOT = "The form could not be sent. Please check your answers and send it again."
MESSAGE_UNCHECKED = (
    "The form could not be checked. Please reload the page, check your answers and send again."
)
MESSAGE_EXPIRED = "The form expired, please check your answers and send again."
MESSAGE_TOO_FAST = (
    "The form was sent very quickly, so we could not be sure a person sent it. "
    "Please check your answers and send again."
)
MESSAGE_REFERRAL_LIMIT = (
    "We have had several requests to be contacted from your connection, or with these contact "
    "details, in a short time, so we cannot take another one now. Your answers are kept: "
    "please try again {when}. If you have already sent a request, you do not need to send it "
    "again: a coordinator will contact you."
)
MESSAGE_USED = (
    "This page was already sent once, so we did not use it again. "
    "Please check your answers and send them again."
)

# Longer than any token new_form_token() makes; a longer value is not even looked at.
_MAX_TOKEN_LENGTH = 200
_SESSION_MARK = "prescreen_rate"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

View = Callable[..., HttpResponseBase]


# --- the form token and the honeypot ----------------------------------------------------------

_PART_SEPARATOR = "|"  # between the parts of a token's signed value


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=TOKEN_SALT)


def _session_binding(request: HttpRequest) -> str:
    """A keyed hash of the visitor's session key ("" when they have no session yet).

    Reading it starts no session: a visitor who only looks at a page stores nothing. The key
    itself never goes into a page (its cookie is HttpOnly).
    """
    session = getattr(request, "session", None)
    if session is None:
        return ""
    session.keys()  # loads it: the key of a cookie whose session is gone becomes None
    key = session.session_key
    return salted_hmac("prescreen-form-session", str(key)).hexdigest()[:24] if key else ""


def _token_value(purpose: str, binding: str) -> str:
    return _PART_SEPARATOR.join((purpose, binding, secrets.token_urlsafe(12)))


def new_form_token(request: HttpRequest, purpose: str) -> str:
    """The token for the hidden ``FORM_TOKEN_FIELD`` of the form ``purpose`` (a step, the
    contact form): signed, it holds the purpose, the session the page was shown in, a random
    nonce and the time. ``check_submission`` accepts it once, for that form, in that session,
    between ``PRESCREEN_MIN_FILL_SECONDS`` and ``PRESCREEN_FORM_MAX_AGE_SECONDS`` after."""
    return _signer().sign(_token_value(purpose, _session_binding(request)))


@dataclass(frozen=True)
class _Token:
    purpose: str
    binding: str
    nonce: str
    issued: float


def _read_token(token: str) -> _Token | None:
    """The token's parts, or None when it is not one of ours (or not of this kind)."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    signer = _signer()
    try:
        # The base Signer checks the signature and returns "value:timestamp"; the timestamp
        # is needed for the minimum fill time, which TimestampSigner.unsign does not expose.
        signed = signing.Signer.unsign(signer, token)
        value, encoded = signed.rsplit(signer.sep, 1)
        issued = float(signing.b62_decode(encoded))
    except (signing.BadSignature, ValueError):
        return None
    parts = value.split(_PART_SEPARATOR)
    if len(parts) != 3 or not parts[0] or not parts[2]:
        return None
    return _Token(parts[0], parts[1], parts[2], issued)


def submitted_nonce(request: HttpRequest) -> str:
    """The nonce of the token POSTed with ``request`` ("" when there is none): what a view
    keeps to recognise the same page sent twice from a session (a double click)."""
    token = _read_token(request.POST.get(FORM_TOKEN_FIELD, ""))
    return token.nonce if token is not None else ""


def _first_use(token: _Token, max_age: float) -> bool:
    """Record the token as used; False when it already was."""
    cache = caches[getattr(settings, "PRESCREEN_RATE_CACHE", "default")]
    try:
        return bool(cache.add(f"prescreen:token:{token.nonce}", 1, int(max_age) + 60))
    except Exception:  # noqa: BLE001 - a cache outage must not take the form down with it
        logger.warning("pre-screening form token not checked for reuse: the cache is unavailable")
        return True


def check_submission(
    request: HttpRequest, purpose: str, *, new_visitor: bool = False
) -> str | None:
    """None when the POSTed form ``purpose`` passes the bot checks, else a short message for
    the visitor (``MESSAGE_USED`` when its token was accepted before).

    The token must be the one a page of this form showed in this session; with
    ``new_visitor`` (the form's first page) also one shown before the visitor had a session.
    Each token is accepted once: replaying it, in this session or any other, is refused.
    Logs the kind of refusal only, never the values sent.
    """
    if request.POST.get(HONEYPOT_FIELD, "").strip():
        return _refused("honeypot", MESSAGE_HONEYPOT)
    token = _read_token(request.POST.get(FORM_TOKEN_FIELD, ""))
    if token is None:
        return _refused("token", MESSAGE_UNCHECKED)
    if token.purpose != purpose:
        return _refused("another form's token", MESSAGE_UNCHECKED)
    if token.binding != _session_binding(request) and not (new_visitor and not token.binding):
        # Most often a session that ended (idle too long) since the page was shown.
        return _refused("another session's token", MESSAGE_EXPIRED)
    age = time.time() - token.issued
    max_age = getattr(settings, "PRESCREEN_FORM_MAX_AGE_SECONDS", DEFAULT_FORM_MAX_AGE_SECONDS)
    if age > max_age:
        return _refused("expired", MESSAGE_EXPIRED)
    min_fill = getattr(settings, "PRESCREEN_MIN_FILL_SECONDS", DEFAULT_MIN_FILL_SECONDS)
    if age < min_fill:
        return _refused("too fast", MESSAGE_TOO_FAST)
    if not _first_use(token, max_age):
        return _refused("token used before", MESSAGE_USED)
    return None


def _refused(kind: str, message: str) -> str:
    logger.info("pre-screening submission refused: %s", kind)
    return message


# --- rate limits ------------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds


def parse_rate(text: str) -> Rate | None:
    """``"30/h"`` -> 30 per 3600 s; ``"5/10m"`` -> 5 per 600 s; ``""`` -> None (no limit)."""
    if not text or not text.strip():
        return None
    found = _RATE.match(text)
    if not found:
        raise ImproperlyConfigured(
            f"A rate must look like 30/h (a count, '/', then s, m, h or d), got {text!r}"
        )
    count, multiple, unit = found.groups()
    return Rate(int(count), int(multiple or 1) * _UNIT_SECONDS[unit])


def _address_key(address: str) -> str:
    """What an address is counted under: IPv6 by its /64 (one subscriber's range)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def _hashed(purpose: str, value: str) -> str:
    return salted_hmac(f"prescreen-rate-{purpose}", value).hexdigest()[:32]


def _session_key(request: HttpRequest) -> str | None:
    """The visitor's session key, starting a session (with a marker only) when there is none, so
    that a browser keeping cookies is counted from its first POST on."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    if session.session_key is None:
        session[_SESSION_MARK] = True
        session.save()
    key = session.session_key
    return str(key) if key else None


def _count(name: str, identity: str, rate: Rate, now: float) -> int | None:
    """Count one hit; the seconds until the window ends when the limit is passed, else None."""
    cache = caches[getattr(settings, "PRESCREEN_RATE_CACHE", "default")]
    start = int(now) - int(now) % rate.window
    key = f"prescreen:rate:{name}:{rate.window}:{start}:{identity}"
    timeout = rate.window + 60
    cache.add(key, 0, timeout)
    try:
        hits = cache.incr(key)
    except ValueError:  # expired (or evicted) between add and incr
        cache.add(key, 1, timeout)
        hits = 1
    if hits > rate.limit:
        return max(1, start + rate.window - int(now))
    return None


def _retry_after(request: HttpRequest) -> int | None:
    """Count this request against both limits; seconds to wait when one is passed."""
    per_ip = parse_rate(getattr(settings, "PRESCREEN_RATE_PER_IP", DEFAULT_RATE_PER_IP))
    per_session = parse_rate(
        getattr(settings, "PRESCREEN_RATE_PER_SESSION", DEFAULT_RATE_PER_SESSION)
    )

    def counted() -> Iterator[tuple[str, str, Rate]]:
        if per_ip is not None:
            yield "ip", _hashed("ip", _address_key(client_ip(request))), per_ip
        if per_session is not None:
            session_key = _session_key(request)
            if session_key is not None:
                yield "session", _hashed("session", session_key), per_session

    return _longest_wait(counted(), "pre-screening rate limit not checked")


def _longest_wait(counted: Iterable[tuple[str, str, Rate]], unchecked: str) -> int | None:
    """Count one request in each (name, identity, rate) window; the longest wait a passed
    limit asks for, or None. A cache outage lets the request through, logged as
    ``unchecked``: it must not take the form down with it."""
    now = time.time()
    waits: list[int] = []
    try:
        for name, identity, rate in counted:
            wait = _count(name, identity, rate, now)
            if wait is not None:
                waits.append(wait)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("%s: the cache is unavailable", unchecked)
        return None
    return max(waits) if waits else None


def referral_retry_after(request: HttpRequest, contact_keys: Iterable[str]) -> int | None:
    """Count one request to be contacted against the per-address limit
    (``PRESCREEN_REFERRAL_RATE_PER_IP``) and, for each of its contact details (a normalised
    email address, a phone number's digits), the per-contact limit
    (``PRESCREEN_REFERRAL_RATE_PER_CONTACT``); seconds to wait when one is passed.

    Every request that reaches this point counts, the ones found to repeat an earlier request
    too: that bounds how often anyone can ask whether some contact details were sent.
    """
    per_ip = parse_rate(
        getattr(settings, "PRESCREEN_REFERRAL_RATE_PER_IP", DEFAULT_REFERRAL_RATE_PER_IP)
    )
    per_contact = parse_rate(
        getattr(settings, "PRESCREEN_REFERRAL_RATE_PER_CONTACT", DEFAULT_REFERRAL_RATE_PER_CONTACT)
    )
    counted: list[tuple[str, str, Rate]] = []
    if per_ip is not None:
        address = _address_key(client_ip(request))
        counted.append(("referral-ip", _hashed("ip", address), per_ip))
    if per_contact is not None:
        counted.extend(
            ("referral-contact", _hashed("contact", key), per_contact) for key in contact_keys
        )
    return _longest_wait(counted, "pre-screening referral limit not checked")


def referral_refusal(retry_after: int) -> str:
    """What the visitor reads when a request to be contacted passes a referral limit."""
    return MESSAGE_REFERRAL_LIMIT.format(when=_in_words(retry_after))


@contextmanager
def contact_lock(contact_keys: Iterable[str]) -> Iterator[bool]:
    """Hold these contact details while one request with them is stored: True when this
    request has them, False when another request holding any of them is under way (so this
    one repeats it). Only keyed hashes go into the cache; without a cache, always True."""
    cache = caches[getattr(settings, "PRESCREEN_RATE_CACHE", "default")]
    held: list[str] = []
    free = True
    try:
        for key in contact_keys:
            name = f"prescreen:referral-lock:{_hashed('contact', key)}"
            if cache.add(name, 1, _LOCK_SECONDS):
                held.append(name)
            else:
                free = False
                break
    except Exception:  # noqa: BLE001 - a cache outage must not take the form down with it
        logger.warning("pre-screening referral not locked: the cache is unavailable")
    try:
        yield free
    finally:
        try:
            cache.delete_many(held)
        except Exception:  # noqa: BLE001 - the lock expires on its own
            logger.warning("pre-screening referral lock not released: the cache is unavailable")


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return "in a minute or two"
    minutes = (seconds + 59) // 60
    if minutes < 90:
        return f"in about {minutes} minutes"
    hours = round(minutes / 60)
    return "in about an hour" if hours <= 1 else f"in about {hours} hours"


def too_many_requests(request: HttpRequest, retry_after: int) -> HttpResponse:
    """The kind 429 page, with ``Retry-After`` (seconds)."""
    response = render(
        request,
        "prescreen/429.html",
        {"retry_after": retry_after, "retry_in_words": _in_words(retry_after)},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    _make_private(response)
    return response


# --- body size --------------------------------------------------------------------------------


def _max_body_bytes() -> int:
    return int(getattr(settings, "PRESCREEN_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def _body_too_large(request: HttpRequest, max_bytes: int) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True  # a length that is not a number is not a browser's
    return length > max_bytes


def too_large(request: HttpRequest, max_bytes: int) -> HttpResponse:
    """The friendly 413 page."""
    response = render(
        request, "prescreen/413.html", {"max_kilobytes": max(1, max_bytes // 1024)}, status=413
    )
    _make_private(response)
    return response


def body_limit(max_bytes: int | None = None) -> Callable[[View], View]:
    """Refuse request bodies over ``max_bytes`` (default ``PRESCREEN_MAX_BODY_BYTES``) with a
    413 page, judged by ``Content-Length`` before anything reads the body."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            limit = _max_body_bytes() if max_bytes is None else max_bytes
            if _body_too_large(request, limit):
                return too_large(request, limit)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# --- the view decorators ----------------------------------------------------------------------


def rate_limited(view: View) -> View:
    """Count every POST against the per-address and per-session limits (429 past them), refuse
    oversized bodies (413), then check CSRF and run the view. GET is never limited.

    The CSRF check moves inside (the view is marked ``csrf_exempt`` for the middleware and
    wrapped in ``csrf_protect``) so that POSTs failing it count too and the size is checked
    before the body is read. Apply it to a function view, or to the ``as_view()`` result.
    """
    protected = csrf_protect(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in _SAFE_METHODS:
            wait = _retry_after(request)
            if wait is not None:
                return too_many_requests(request, wait)
            limit = _max_body_bytes()
            if _body_too_large(request, limit):
                return too_large(request, limit)
        return protected(request, *args, **kwargs)

    wrapped.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapped


def _make_private(response: HttpResponseBase) -> None:
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex, nofollow"
    # Never to other sites (the results address holds the visitor's token), but kept on our
    # own: with "no-referrer" browsers send "Origin: null" on the form posts and the CSRF
    # origin check refuses every one.
    response["Referrer-Policy"] = "same-origin"


def private_page(view: View) -> View:
    """Responses never stored by a cache, never indexed, never sent to another site as a
    referrer."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        _make_private(response)
        return response

    return wrapped
