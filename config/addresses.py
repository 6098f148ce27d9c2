"""The client's address, decided once for the whole service.

``REMOTE_ADDR``, or, when ``NUM_PROXIES`` reverse proxies are in front (each appending the
address it saw to ``X-Forwarded-For``), the entry the outermost trusted proxy added. Entries
further left are whatever the client claimed and are ignored, so a client can neither pick the
address it is counted under (the pre-screening form's limits) nor the one the audit trail
records. Every audit entry and every limit uses ``client_ip``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address from the configured trusted proxies ("" when none is known)."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = int(getattr(settings, "NUM_PROXIES", 0) or 0)
    if proxies > 0:
        forwarded = [
            part.strip()
            for part in str(request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            remote = forwarded[-proxies]
    return remote
