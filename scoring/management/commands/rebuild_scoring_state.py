"""Rebuild a tenant's Redis enrichment state from PostgreSQL (after Redis lost it)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context


class Command(BaseCommand):
    help = ("Replay the tenant's stored payment/order/return events of the enrichment horizon into Redis "
            "(clearing its old keys first) and mark the state complete.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")

    def handle(self, *args: Any, **opts: Any) -> None:
        from pulse.lib.redis import get_redis
        from scoring.pipeline import state_rebuild
        from tenants.selectors import tenant_for_slug

        tenant = tenant_for_slug(opts["tenant"])
        if tenant is None:
            raise CommandError(f"no active tenant {opts['tenant']!r}")
        started = time.monotonic()
        with schema_context(tenant.schema_name):
            applied = state_rebuild(tenant=tenant, client=get_redis())
        self.stdout.write(f"{tenant.slug}: {applied} events replayed in {time.monotonic() - started:.1f} s")
