from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("tenants", api.TenantsView.as_view(), name="tenants"),
    path("tenant", api.CurrentTenantView.as_view(), name="tenant-current"),
    path("api-keys", api.ApiKeysView.as_view(), name="api-keys"),
    path("api-keys/<int:pk>", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("status", api.StatusView.as_view(), name="status"),
    path("auth/token", api.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", api.TokenRefreshView.as_view(), name="auth-token-refresh"),
]
