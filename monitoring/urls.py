from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("kpi-series", api.WatchedSeriesListView.as_view(), name="kpi-series"),
    path("kpi-series/<int:pk>", api.WatchedSeriesDetailView.as_view(), name="kpi-series-detail"),
    path("calendar", api.CalendarListView.as_view(), name="calendar"),
    path("calendar/<int:pk>", api.CalendarDetailView.as_view(), name="calendar-detail"),
    path("forecast", api.ForecastView.as_view(), name="forecast"),
    path("explain", api.ExplainView.as_view(), name="explain"),
]
