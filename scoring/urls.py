from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("metrics", api.MetricsView.as_view(), name="metrics-series"),
]
