"""The request edge: what no view can use is refused before any view sees it.

- ``InputEdgeMiddleware``: a request whose address or query string holds a NUL character is a
  400, a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` a 413; under ``/api/`` both in the
  API's error format (``config.api_platform``).
- ``StrictJSONParser``: the API's JSON parser, ``config.input_limits.loads`` (no ``NaN`` or
  ``Infinity``, nesting bounded, no text the database cannot hold), its reason in the 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from config.input_limits import loads

API_PREFIX = "/api/"


class StrictJSONParser(JSONParser):
    """The API's JSON parser: ``loads`` above, its reason in the 400."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads(stream.read().decode(encoding))
        except UnicodeDecodeError:
            raise ParseError(f"JSON parse error - the body is not {encoding} text") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _query_texts(request: HttpRequest) -> Iterator[str]:
    yield request.path
    for key, values in request.GET.lists():
        yield key
        yield from values


def _refusal(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        body = {"error": {"status": status, "code": code, "message": message}}
        return JsonResponse(body, status=status)
    if status == 400:
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class InputEdgeMiddleware:
    """Refuses what no view can use before any view sees it (see the module's docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in text for text in _query_texts(request)):
            return _refusal(
                request, 400, "invalid", "The address or a query parameter holds a NUL character."
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refusal(request, 400, "invalid", "The Content-Length header is not a number.")
        if limit is not None and length > limit:
            return _refusal(
                request,
                413,
                "too_large",
                f"The request body is {length} bytes; at most {limit} bytes are accepted.",
            )
        return self.get_response(request)
