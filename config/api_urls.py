"""Routes of the REST API, included under ``/api/``.

- ``/api/v1/...``: the resources (each app's ``api.register(router)`` adds its own).
- ``/api/schema/``: the OpenAPI 3 schema; ``/api/docs/`` Swagger UI and ``/api/redoc/`` Redoc,
  both from local static files (drf-spectacular-sidecar). These three need no sign-in.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
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
    # Ending in "/" only: without it, Django's APPEND_SLASH first redirects to the slashed
    # address, as for the resources themselves.
    re_path(r"^(?:[\s\S]*/)?$", not_found),
]
