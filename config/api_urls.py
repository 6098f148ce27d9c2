"""Routes of the REST API, included under ``/api/``.

- ``/api/v1/...``: the resources (each app's ``api.register(router)`` adds its own).
- ``/api/schema/``: the OpenAPI 3 schema; ``/api/docs/`` Swagger UI and ``/api/redoc/`` Redoc,
  both from this server's files (drf-spectacular-sidecar), requesting nothing elsewhere. These
  three need no sign-in.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from csp.decorators import csp_update
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import etag, require_safe
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.routers import DefaultRouter

import patients.api
import trials.api


class ApiRouter(DefaultRouter):
    include_format_suffixes = False


router = ApiRouter()
trials.api.register(router)
patients.api.register(router)

# The documentation pages run the UI's own scripts and inline styles, from this server only.
_docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})


REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
# Redoc's side menu ends with Redocly's logo, loaded from its CDN: a request to another host,
# which the Content-Security-Policy refuses (a violation on every visit). "data:," is no
# image: the menu's own error handler then leaves the logo out, and nothing is requested.
REDOC_LOGO = (b'"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'"data:,"')


@functools.cache
def redoc_bundle_content() -> bytes:
    found = finders.find(REDOC_BUNDLE)
    if not isinstance(found, str):
        raise LookupError(f"{REDOC_BUNDLE} is not among the static files")
    return Path(found).read_bytes().replace(*REDOC_LOGO)


@require_safe
@etag(lambda request: hashlib.sha256(redoc_bundle_content()).hexdigest())
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    """The sidecar's Redoc bundle, with the logo that would come from elsewhere left out."""
    return HttpResponse(redoc_bundle_content(), content_type="text/javascript; charset=utf-8")


@csrf_exempt  # nothing to protect; a POST gets the 404 too, not the CSRF failure page
def not_found(request: HttpRequest) -> JsonResponse:
    """Any other address under /api/: a 404 in the API's error format, not the site's page."""
    error = {"status": 404, "code": "not_found", "message": "No such address in the API."}
    return JsonResponse({"error": error}, status=404)


urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        _docs_csp(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
    path(
        "redoc/",
        _docs_csp(SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html")),
        name="redoc",
    ),
    path("redoc/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
    # Ending in "/" only: without it, Django's APPEND_SLASH first redirects to the slashed
    # address, as for the resources themselves.
    re_path(r"^(?:[\s\S]*/)?$", not_found),
]
