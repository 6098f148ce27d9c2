"""Structured logs: one JSON object a line, each with the id of the request or task it came from,
and never personal data.

- ``RequestIdMiddleware`` (first in ``MIDDLEWARE``) gives each request an id (the caller's
  ``X-Request-ID`` when it is a plain token, else a new one), sends it back in the response's
  ``X-Request-ID`` and writes one access line: method, path without its query string (where
  searches and filters may carry an MRN) and with credential segments masked (a results
  token: ``loggable_path``; ``SecretPathFilter`` masks Django's own request messages), status,
  duration, user id.
- Celery tasks log under ``task:<task id>`` (signals below).
- ``JsonFormatter`` writes time, level, logger, message and the id. Of an exception it writes
  the type and where it was raised (file, line, function), not its message nor the values in
  the frames: those can hold whatever the code was handling (a MRN in a database error's
  detail, a name in a validation message). ``LOG_EXCEPTION_MESSAGES=1`` adds the message, for
  debugging on a machine without patient data.

The application's own log messages name records by primary key, counts and kinds only.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
access_log = logging.getLogger("trialmatch.access")


# Parts of an address that are credentials: a results token opens a visitor's answers.
SECRET_URL_KWARGS = frozenset({"token"})


def loggable_path(request: HttpRequest) -> str:
    """The request's path without its query string, each credential segment replaced by its
    route name (``/prescreen/results/<token>/``)."""
    path = request.path
    match = getattr(request, "resolver_match", None)
    if match is not None:
        for name, value in match.kwargs.items():
            if name in SECRET_URL_KWARGS and isinstance(value, str) and value:
                path = path.replace(f"/{value}/", f"/<{name}>/")
    return path


class SecretPathFilter(logging.Filter):
    """Django's own request messages ("Not Found: /path") name the path: masked as the
    access line masks it."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest) and isinstance(record.args, tuple):
            path, masked = request.path, loggable_path(request)
            if path != masked:
                record.args = tuple(masked if arg == path else arg for arg in record.args)
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request or task id on every record (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _exception_messages(configured: bool | None) -> bool:
    if configured is not None:
        return configured
    return bool(getattr(settings, "LOG_EXCEPTION_MESSAGES", False))


def _frames(trace: Any) -> list[str]:
    return [
        f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in traceback.extract_tb(trace)
    ][-8:]


class PlainFormatter(logging.Formatter):
    """The terminal format; an exception as type and place, its message only if allowed."""

    def __init__(self, *args: Any, exception_messages: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exception_messages = exception_messages

    def formatException(self, ei: Any) -> str:
        if _exception_messages(self.exception_messages):
            return super().formatException(ei)
        kind, _, trace = ei
        where = "\n  ".join(_frames(trace))
        return f"{kind.__module__}.{kind.__qualname__} (message left out)\n  {where}"


class JsonFormatter(logging.Formatter):
    def __init__(self, *args: Any, exception_messages: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exception_messages = exception_messages

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or request_id.get(),
            "message": record.getMessage(),
        }
        for key in ACCESS_FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[0] is not None:
            kind, value, trace = record.exc_info
            entry["exception"] = {
                "type": f"{kind.__module__}.{kind.__qualname__}",
                "at": _frames(trace),
            }
            if _exception_messages(self.exception_messages):
                entry["exception"]["message"] = str(value)
        return json.dumps(entry, ensure_ascii=False, default=str)


ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "user_id")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        current = given if VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        # Kept until the response is closed (``request_finished``): Django logs a 4xx/5xx
        # ("django.request") after the middleware returned.
        request_id.set(current)
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = current
        user = getattr(request, "user", None)
        path = loggable_path(request)
        access_log.info(
            "%s %s %s",
            request.method,
            path,
            response.status_code,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": user.pk if user is not None and user.is_authenticated else None,
            },
        )
        return response


def request_done(**kwargs: Any) -> None:
    request_id.set("-")


request_finished.connect(request_done, dispatch_uid="config.logs.request_done")


def task_started(task_id: str | None = None, **kwargs: Any) -> None:
    request_id.set(f"task:{task_id}")


def task_finished(**kwargs: Any) -> None:
    request_id.set("-")
