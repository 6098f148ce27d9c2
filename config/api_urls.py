"""Routes of the REST API, included under ``/api/``.

- ``/api/v1/...``: the resources (each app's ``api.register(router)`` adds its own).
- ``/api/schema/``: the OpenAPI 3 schema; ``/api/docs/`` Swagger UI and ``/api/redoc/`` Redoc,
  both from local static files (drf-spectacular-sidecar). These three need no sign-in.
"""

from __future__ import annotations

import importlib
from typing import Any

from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.routers import DefaultRouter

import trials.api


class ApiRouter(DefaultRouter):
    include_format_suffixes = False


router = ApiRouter()
trials.api.register(router)
try:
    _patients_api: Any = importlib.import_module("patients.api")
except ModuleNotFoundError as exc:  # the patients endpoints are optional until written
    if exc.name != "patients.api":
        raise
else:
    _patients_api.register(router)

# The documentation pages run the UI's own scripts and inline styles, from this server only.
_docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]})

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
]
