"""URL routes of the service.

``/healthz`` is answered earlier, by ``config.health.HealthCheckMiddleware``.
"""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
