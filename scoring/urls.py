from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("metrics", api.MetricsView.as_view(), name="metrics-series"),
    path("anomalies", api.AnomaliesView.as_view(), name="anomalies"),
    path("anomalies/<int:pk>", api.AnomalyDetailView.as_view(), name="anomaly-detail"),
    path("rules", api.RulesView.as_view(), name="rules"),
    path("rules/dry-run", api.RuleDryRunView.as_view(), name="rules-dry-run"),
    path("rules/<int:pk>", api.RuleDetailView.as_view(), name="rule-detail"),
    path("rules/<int:pk>/versions", api.RuleVersionsView.as_view(), name="rule-versions"),
    path("fraud-check", api.FraudCheckView.as_view(), name="fraud-check"),
]
