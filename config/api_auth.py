"""Authentication and throttling of the REST API (``/api/v1/``).

Systems send ``Authorization: Token <key>`` with a key from ``manage.py create_api_token``;
the key is looked up by its SHA-256 (``patients.models.ApiToken``), never stored in clear.
A browser signed in to the admin uses its session instead, once its sign-in is complete
(two-factor, ``config.two_factor``). Either way the account must be an active staff account
(``may_use_api``) at every request: deactivating an account or taking its staff status away
ends its keys and sessions at once, as it closes the admin to it.

A refused key counts against its address's allowance for callers without credentials
(``AnonIPRateThrottle``), so keys cannot be guessed faster than that rate.
"""

from __future__ import annotations

import datetime
from typing import Any, NoReturn

from django.conf import settings
from django.utils import timezone
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from config.addresses import client_ip
from patients.models import ApiToken

KEYWORD = "Token"
# last_used_at is written at most this often per token (one UPDATE, not one per request).
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


def may_use_api(user: Any) -> bool:
    """Whether ``user``'s keys and sessions are accepted: an active staff account."""
    return bool(user.is_active and user.is_staff)


class HashedTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>``: an unknown, revoked or malformed key, or one whose
    account may not use the API, is a 401 (a 429 once the address is over its allowance)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            self._refuse(request, "Invalid token header: give one key.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            self._refuse(request, "Invalid token.")
        token = (
            ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
        )
        if token is None or token.revoked or not may_use_api(token.user):
            self._refuse(request, "Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD

    @staticmethod
    def _refuse(request: Request, message: str) -> NoReturn:
        throttle = RefusedCredentialThrottle()
        view: Any = (request.parser_context or {}).get("view")
        if not throttle.allow_request(request, view):
            raise exceptions.Throttled(throttle.wait())
        raise exceptions.AuthenticationFailed(message)


class StaffSessionAuthentication(SessionAuthentication):
    """The admin's session, for as long as its account may use the API (``may_use_api``) and
    as far as the workspace itself would open to it: a sign-in the second factor has not
    completed (``config.two_factor``) is no sign-in here either. Otherwise the request has no
    credentials."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        from config import two_factor

        authenticated = super().authenticate(request)
        if authenticated is None:
            return None
        user = authenticated[0]
        if not may_use_api(user) or not two_factor.satisfied(user):
            return None
        return authenticated


class HashedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "config.api_auth.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token-based authentication: "Token <key>" '
            "(keys from manage.py create_api_token).",
        }


class StaffSessionScheme(SessionScheme):
    """The schema names the session as drf-spectacular names Django's (``cookieAuth``)."""

    target_class = "config.api_auth.StaffSessionAuthentication"
    priority = 0


class _SettingsRateThrottle(SimpleRateThrottle):
    """Reads its rate from settings on every request (so tests and env changes apply)."""

    def get_rate(self) -> str | None:
        rates: dict[str, str | None] = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope or "")


class TokenOrUserRateThrottle(_SettingsRateThrottle):
    """Authenticated callers: counted per API token, or per user for a browser session."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        else:
            ident = f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonIPRateThrottle(_SettingsRateThrottle):
    """Callers without credentials: counted per client address (``config.addresses``)."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def get_ident(self, request: Request) -> str:
        return client_ip(request._request)


class RefusedCredentialThrottle(AnonIPRateThrottle):
    """A refused key, counted as a call without credentials from its address. Asked while the
    key is authenticated, when the request has no user yet."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
