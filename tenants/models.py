"""Shared (public schema) models: tenants, their domains, plans, API keys, people and usage."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone
from django_tenants.models import DomainMixin, TenantMixin

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")


def validate_slug(value: str) -> None:
    if not SLUG_RE.match(value):
        raise ValidationError("Use 2-41 lower-case letters, digits or '-', starting with a letter.")
    if value in {"public", "admin", "api", "www", "template"}:
        raise ValidationError(f"'{value}' is reserved.")


def validate_timezone(value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone '{value}'.") from exc


def validate_currency(value: str) -> None:
    from ingestion.iso4217 import ACTIVE_CURRENCIES

    if value not in ACTIVE_CURRENCIES:
        raise ValidationError(f"'{value}' is not an ISO 4217 currency code.")


def validate_config(value: Any) -> None:
    from .config import ConfigError, config_validate

    try:
        config_validate(value)
    except ConfigError as exc:
        raise ValidationError(exc.messages) from exc


class Plan(models.Model):
    code = models.SlugField(primary_key=True, max_length=32)
    name = models.CharField(max_length=64)
    events_per_day = models.BigIntegerField(help_text="0 means unlimited")
    api_calls_per_day = models.BigIntegerField(help_text="0 means unlimited")
    retention_days = models.PositiveIntegerField(default=90)

    def __str__(self) -> str:
        return self.name


class Tenant(TenantMixin):
    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=41, unique=True, validators=[validate_slug])
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    is_active = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True, validators=[validate_config],
                              help_text="Per-tenant settings by section: ingestion, scoring, kpi, learning, alerts.")
    created_at = models.DateTimeField(default=dj_timezone.now)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @staticmethod
    def schema_for_slug(slug: str) -> str:
        return "t_" + slug.replace("-", "_")


class Domain(DomainMixin):
    pass


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        INGEST = "ingest"
        READ = "read"
        ADMIN = "admin"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Visible part used to find the key.")
    hashed_key = models.CharField(max_length=64, help_text="SHA-256 of the whole key; the key itself is never stored.")
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=dj_timezone.now)
    created_by = models.CharField(max_length=150, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin"
        ANALYST = "analyst"
        VIEWER = "viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="one_role_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}: {self.role}"


class UsageCounter(models.Model):
    """Daily usage per tenant, flushed from Redis counters; the basis for plan limits."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    events_accepted = models.BigIntegerField(default=0)
    api_calls = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="one_usage_row_per_day")]
        ordering = ["-day"]
