"""One URL conf for every host: the tenant comes from the API key, token or host, not from the path."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from pulse.lib.metrics import metrics_view

api_v1 = [
    path("", include("tenants.urls")),
    path("", include("ingestion.urls")),
    path("", include("scoring.urls")),
    path("", include("monitoring.urls")),
    path("", include("learning.urls")),
    path("", include("alerts.urls")),
    path("", include("insights.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[],
                                                     permission_classes=[]), name="docs"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
]
