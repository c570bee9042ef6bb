from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("alert-channels", api.ChannelListView.as_view(), name="alert-channels"),
    path("alert-channels/<int:pk>", api.ChannelDetailView.as_view(), name="alert-channel-detail"),
    path("alert-channels/<int:pk>/test", api.ChannelTestView.as_view(), name="alert-channel-test"),
    path("alert-policies", api.PolicyListView.as_view(), name="alert-policies"),
    path("alert-policies/<int:pk>", api.PolicyDetailView.as_view(), name="alert-policy-detail"),
    path("alerts", api.AlertListView.as_view(), name="alerts"),
    path("alerts/<int:pk>", api.AlertDetailView.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/snooze", api.AlertSnoozeView.as_view(), name="alert-snooze"),
    path("snoozes", api.SnoozeListView.as_view(), name="snoozes"),
    path("snoozes/<int:pk>", api.SnoozeDetailView.as_view(), name="snooze-detail"),
]
