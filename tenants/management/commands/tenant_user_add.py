from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant
from tenants.services import membership_set


class Command(BaseCommand):
    help = "Give a person (created if needed) a role in a tenant: admin, analyst or viewer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("--role", default="viewer", choices=["admin", "analyst", "viewer"])
        parser.add_argument("--password")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["slug"]).first()
        if tenant is None:
            raise CommandError(f"no tenant '{options['slug']}'")
        membership = membership_set(tenant=tenant, username=options["username"], role=options["role"],
                                    password=options["password"], email=options["email"])
        self.stdout.write(f"{membership.user.username} is {membership.role} of {tenant.slug}")
