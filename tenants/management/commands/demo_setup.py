from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tenants.models import ApiKey, Tenant
from tenants.services import api_key_create, api_key_revoke, membership_set, tenant_create


class Command(BaseCommand):
    help = ("Create the demo tenant if missing and issue a fresh API key for this run (older demo-run keys "
            "are revoked). Writes the key to .pulse/demo.json for the simulator feed and prints it.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", default="demo")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            tenant, _ = tenant_create(slug=slug, name="Demo Shop", plan="growth", timezone_name="Europe/Berlin",
                                      currency="EUR", created_by="make run")
            membership_set(tenant=tenant, username="demo", role="admin", password="demo-password")
        for old in ApiKey.objects.filter(tenant=tenant, name="make run", revoked_at__isnull=True):
            api_key_revoke(key=old)
        _, raw = api_key_create(tenant=tenant, name="make run", scopes=["ingest", "read", "admin"],
                                created_by="make run")
        settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
        info = {"slug": tenant.slug, "api_key": raw, "base_url": settings.PULSE_BASE_URL}
        (settings.STATE_DIR / "demo.json").write_text(json.dumps(info))
        self.stdout.write(json.dumps(info))
