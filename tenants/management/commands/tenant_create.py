from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (schema, host name, first admin API key) and print {id, slug, api_key} as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--plan", default="free")
        parser.add_argument("--timezone", default="UTC")
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--config", default="{}", help="JSON object for Tenant.config")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant, raw_key = tenant_create(
                slug=options["slug"], name=options["name"], plan=options["plan"],
                timezone_name=options["timezone"], currency=options["currency"],
                config=json.loads(options["config"]), created_by="manage.py",
            )
        except (ValidationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"id": tenant.pk, "slug": tenant.slug, "api_key": raw_key}))
