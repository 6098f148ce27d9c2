"""Shared behaviour of the REST API: pagination and the error format.

Every 4xx answer has one shape::

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {...}}}

``fields`` (400s only) maps a field name (or ``non_field_errors``) to its messages.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler

# Ids in addresses and filters: at most 18 digits, so that a number past the database's
# 64-bit integers is a 404 or a 400, never an overflow inside the query.
ID_PATTERN = r"[0-9]{1,18}"
MAX_ID = 10**18 - 1
_ID = re.compile(ID_PATTERN)


def parse_id(text: str | None) -> int | None:
    """``text`` as a row id (ASCII digits, ``ID_PATTERN``), or None: a superscript two passes
    ``str.isdigit`` and a 30-digit number overflows the database's integers, neither is an id."""
    return int(text) if text is not None and _ID.fullmatch(text) else None


class ApiPagination(PageNumberPagination):
    """``?page=N&page_size=M``: 50 by default, at most 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def _messages(detail: Any) -> Any:
    """ErrorDetail trees as plain strings."""
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_messages(value) for value in detail]
    return str(detail)


def _first_message(detail: Any) -> str | None:
    if isinstance(detail, dict):
        for value in detail.values():
            found = _first_message(value)
            if found:
                return found
        return None
    if isinstance(detail, list):
        for value in detail:
            found = _first_message(value)
            if found:
                return found
        return None
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, headers such as Retry-After and WWW-Authenticate), reshaped."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a 5xx, handled (and logged) by Django
    error: dict[str, Any] = {"status": response.status_code}
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        error["code"] = "invalid"
        if isinstance(detail, dict):
            error["message"] = _first_message(detail) or "Invalid input."
            error["fields"] = _messages(detail)
        else:
            messages = _messages(detail if isinstance(detail, list) else [detail])
            error["message"] = messages[0] if messages else "Invalid input."
            error["fields"] = {"non_field_errors": messages}
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        error["code"] = codes if isinstance(codes, str) else exc.default_code
        error["message"] = _first_message(exc.detail) or str(exc.default_detail)
    else:  # pragma: no cover - exception_handler answers APIException subclasses only
        error["code"] = "error"
        error["message"] = "Request failed."
    response.data = {"error": error}
    return response
