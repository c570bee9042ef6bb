from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("anomalies/<int:pk>/feedback", api.AnomalyFeedbackView.as_view(), name="anomaly-feedback"),
    path("labels", api.LabelsView.as_view(), name="labels"),
    path("thresholds", api.ThresholdsView.as_view(), name="thresholds"),
    path("thresholds/history", api.ThresholdHistoryView.as_view(), name="threshold-history"),
    path("thresholds/recalibrate", api.RecalibrateView.as_view(), name="thresholds-recalibrate"),
    path("thresholds/<int:pk>/pin", api.ThresholdPinView.as_view(), name="threshold-pin"),
    path("thresholds/changes/<int:pk>/rollback", api.ThresholdRollbackView.as_view(), name="threshold-rollback"),
    path("drift-reports", api.DriftReportsView.as_view(), name="drift-reports"),
    path("models", api.ModelsView.as_view(), name="models"),
    path("models/retrain", api.RetrainView.as_view(), name="models-retrain"),
    path("models/rollback", api.ModelRollbackView.as_view(), name="models-rollback"),
    path("models/<int:version>/promote", api.ModelPromoteView.as_view(), name="model-promote"),
]
