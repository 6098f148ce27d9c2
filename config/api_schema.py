"""What drf-spectacular cannot see in the views, added to the generated OpenAPI schema.

- The patient-data documents as named components (``patients.api_schema``).
- The error answers every operation can give, in the one error format of
  ``config.api_platform``: 400 (field errors), 401 (no or bad credentials, with
  ``WWW-Authenticate``), 403, 404, 415 (a body that is not JSON) and 429 (with
  ``Retry-After``). A client generated from the schema then knows them, and the contract
  test checks each answer against them.
"""

from __future__ import annotations

from typing import Any

from patients import api_schema

ERROR = {
    "type": "object",
    "description": "Every error answer of the API",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "400 only: messages by field (or non_field_errors)",
                    "additionalProperties": True,
                },
            },
        }
    },
}

_HEADER_TEXT = {"schema": {"type": "string"}}
ERROR_RESPONSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "400": ("BadRequest", "Invalid input: `fields` says which and why", {}),
    "401": (
        "Unauthenticated",
        'No credentials, or not valid ones: send "Authorization: Token <key>"',
        {"WWW-Authenticate": _HEADER_TEXT},
    ),
    "403": ("Forbidden", "Signed in, but this role may not do this", {}),
    "404": ("NotFound", "No such object among your sites' data", {}),
    "415": ("UnsupportedMediaType", "The body is not JSON (Content-Type: application/json)", {}),
    "429": (
        "Throttled",
        "Too many requests: retry after the number of seconds in Retry-After",
        {"Retry-After": {"schema": {"type": "integer"}}},
    ),
}


def add_documents_and_errors(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``)."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(api_schema.components())
    schemas["Error"] = ERROR
    responses = components.setdefault("responses", {})
    for name, description, headers in ERROR_RESPONSES.values():
        responses[name] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            **({"headers": headers} if headers else {}),
        }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            for code, (name, _, _) in ERROR_RESPONSES.items():
                if code == "415" and "requestBody" not in operation:
                    continue
                answers.setdefault(code, {"$ref": f"#/components/responses/{name}"})
    return result
