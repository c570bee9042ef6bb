from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("events", api.EventsView.as_view(), name="events"),
    path("quarantine", api.QuarantineListView.as_view(), name="quarantine"),
    path("quarantine/<int:pk>/replay", api.QuarantineReplayView.as_view(), name="quarantine-replay"),
    path("uploads", api.UploadsView.as_view(), name="uploads"),
    path("uploads/<int:pk>", api.UploadDetailView.as_view(), name="upload-detail"),
    path("orders/<str:order_id>/tracking", api.OrderTrackingView.as_view(), name="order-tracking"),
    path("import-sources", api.ImportSourceListView.as_view(), name="import-sources"),
    path("import-sources/<int:pk>", api.ImportSourceDetailView.as_view(), name="import-source-detail"),
]
