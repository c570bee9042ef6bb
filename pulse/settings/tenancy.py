"""django-tenants: one PostgreSQL schema per tenant, `tenants` is the shared app."""

from __future__ import annotations

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# Our middleware resolves the tenant from the API key, a JWT claim or the host name.
SHOW_PUBLIC_IF_NO_TENANT_FOUND = True
TENANT_LIMIT_SET_CALLS = True

# Config sections of Tenant.config, one pydantic model per layer app (validated on save).
PULSE_CONFIG_SECTIONS = {
    "ingestion": "ingestion.config.IngestionConfig",
    "scoring": "scoring.config.ScoringConfig",
    "kpi": "monitoring.config.KpiConfig",
    "learning": "learning.config.LearningConfig",
    "alerts": "alerts.config.AlertsConfig",
}
