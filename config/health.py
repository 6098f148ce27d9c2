"""``/healthz``: is this instance able to do its work?

Each check answers quickly and says only ``ok`` or the kind of failure: the endpoint is
public, so it never shows hosts, credentials or data.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app
from trials.models import SyncRun

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


def check_last_sync() -> dict[str, Any]:
    """Age of the last successful registry sync.

    Stale trial data degrades the service; it does not take the instance out of rotation.
    """
    last = (
        SyncRun.objects.filter(
            status=SyncRun.Status.SUCCEEDED,
            mode__in=(SyncRun.Mode.FULL, SyncRun.Mode.INCREMENTAL),  # not files, not one trial
        )
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    if last is None:
        return {"ok": False, "age_seconds": None}
    age = (timezone.now() - last).total_seconds()
    return {"ok": age <= settings.CTGOV_SYNC_MAX_AGE_HOURS * 3600, "age_seconds": round(age)}


def check_queue() -> dict[str, Any]:
    """Tasks waiting in the default queue: a backlog that keeps growing means too few workers
    (or none). Degraded above ``HEALTH_QUEUE_BACKLOG``; the count alone says nothing private."""
    queue = celery_app.conf.task_default_queue
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        try:
            channel: Any = conn.default_channel
            declared = channel.queue_declare(queue=queue, passive=True)
        except conn.channel_errors:
            waiting = 0  # not declared yet: nothing was ever sent to it
        else:
            waiting = int(declared.message_count)
    return {"ok": waiting <= settings.HEALTH_QUEUE_BACKLOG, "waiting": waiting}


# Critical checks answer 503 when they fail; the others only make the status "degraded".
CRITICAL_CHECKS: dict[str, Check] = {
    "database": check_database,
    "broker": check_broker,
}
CHECKS: dict[str, Check] = {**CRITICAL_CHECKS, "last_sync": check_last_sync, "queue": check_queue}


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
    if not all(checks[name]["ok"] for name in CRITICAL_CHECKS):
        status, code = "failing", 503
    elif not all(result["ok"] for result in checks.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JsonResponse({"status": status, "checks": checks}, status=code)


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
