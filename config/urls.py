"""URL routes of the service.

``/healthz`` is answered earlier, by ``config.health.HealthCheckMiddleware``.
"""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("prescreen/", include("patients.prescreen.urls")),
    path("api/", include("config.api_urls")),
]
