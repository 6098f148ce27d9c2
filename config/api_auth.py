"""Authentication and throttling of the REST API (``/api/v1/``).

Systems send ``Authorization: Token <key>`` with a key from ``manage.py create_api_token``;
the key is looked up by its SHA-256 (``patients.models.ApiToken``), never stored in clear.
A browser signed in to the admin uses its session instead.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from patients.models import ApiToken

KEYWORD = "Token"
# last_used_at is written at most this often per token (one UPDATE, not one per request).
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


class HashedTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>``: an unknown, revoked or malformed key is a 401."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give one key.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = (
            ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
        )
        if token is None or token.revoked or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


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
    """Callers without credentials: counted per client address (NUM_PROXIES aware)."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
