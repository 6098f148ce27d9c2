"""URL routes of the service.

``/healthz`` is answered earlier, by ``config.health.HealthCheckMiddleware``.
"""

from django.contrib import admin
from django.urls import path

admin.site.site_header = "Trial matching: coordinator workspace"
admin.site.site_title = "Trial matching"
admin.site.index_title = "Coordinator workspace"

urlpatterns = [
    path("admin/", admin.site.urls),
]
