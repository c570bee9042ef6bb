from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("events", api.EventsView.as_view(), name="events"),
    path("quarantine", api.QuarantineListView.as_view(), name="quarantine"),
    path("quarantine/<int:pk>/replay", api.QuarantineReplayView.as_view(), name="quarantine-replay"),
]
