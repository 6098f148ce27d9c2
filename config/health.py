"""``/healthz``: is this instance able to do its work?

Each check answers quickly and says only ``ok`` or the kind of failure: the endpoint is
public, so it never shows hosts, credentials or data.
"""

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

Check = Callable[[], dict[str, Any]]


def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def check_broker() -> dict[str, Any]:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
    return {"ok": True}


CHECKS: dict[str, Check] = {
    "database": check_database,
    "broker": check_broker,
}


def run_checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - a failing dependency is the answer, not a crash
            results[name] = {"ok": False, "error": type(exc).__name__}
    return results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    checks = run_checks()
    healthy = all(result["ok"] for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "failing", "checks": checks},
        status=200 if healthy else 503,
    )


class HealthCheckMiddleware:
    """Answer ``/healthz`` before host validation and HTTPS redirection.

    Load balancers and container health checks call the service by IP address over plain
    HTTP; that must not need an entry in ``ALLOWED_HOSTS`` or TLS.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/healthz":
            return healthz(request)
        return self.get_response(request)
