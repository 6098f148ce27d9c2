"""The audit trail's request context: who acts, from which address.

django-auditlog's middleware reads the user when the request arrives, before the REST API
has authenticated a token, so token writes were stored without an actor; and it takes the
first ``X-Forwarded-For`` entry, which any client can write. This middleware gives it an actor
resolved when an entry is written (after any authentication) and the address of
``config.addresses.client_ip``.
"""

from __future__ import annotations

from typing import Any

from auditlog.middleware import AuditlogMiddleware
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from config.addresses import client_ip


class AuditMiddleware(AuditlogMiddleware):
    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        return client_ip(request) or None

    @staticmethod
    def _get_remote_port(request: HttpRequest) -> int | None:
        return None  # a header any client writes: not recorded

    @staticmethod
    def _get_actor(request: HttpRequest) -> Any:
        # Resolved when an entry is saved: by then a token has been authenticated too (the
        # REST framework sets the request's user); an anonymous user is no actor.
        return SimpleLazyObject(lambda: _authenticated(request))


def _authenticated(request: HttpRequest) -> Any:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None
