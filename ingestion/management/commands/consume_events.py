"""`manage.py consume_events --topic T --tenant SLUG`: Kafka into the tenant's events (see ingestion.kafka)."""

from __future__ import annotations

import os
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connection


class Command(BaseCommand):
    help = "Consume events from Kafka topics into one tenant; offsets are committed after events are stored."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--topic", action="append", required=True, help="topic (repeat for several)")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
        parser.add_argument("--group", default=None, help="consumer group (default: pulse-<tenant>)")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--poll-timeout", type=float, default=1.0)
        parser.add_argument("--max-messages", type=int, default=None, help="stop after this many (tests)")

    def handle(self, *args: Any, **options: Any) -> None:
        from ingestion.kafka import ConfluentSource, consume_loop
        from tenants.selectors import tenant_for_slug

        tenant = tenant_for_slug(options["tenant"])
        if tenant is None:
            raise CommandError(f"No active tenant {options['tenant']!r}.")
        connection.set_tenant(tenant)
        stopping = {"flag": False}

        def stop(signum: int, frame: Any) -> None:
            stopping["flag"] = True  # finish the batch in hand, commit, then leave

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        source = ConfluentSource(bootstrap=options["bootstrap"], group=options["group"] or f"pulse-{tenant.slug}",
                                 topics=options["topic"])
        self.stderr.write(f"consuming {', '.join(options['topic'])} into {tenant.slug} from {options['bootstrap']}")
        try:
            stats = consume_loop(source, tenant=tenant, batch_size=options["batch_size"],
                                 poll_timeout=options["poll_timeout"], max_messages=options["max_messages"],
                                 should_stop=lambda: stopping["flag"], before_batch=close_old_connections)
        finally:
            source.close()
        self.stdout.write(f'{{"messages": {stats.messages}, "accepted": {stats.accepted}, '
                          f'"duplicates": {stats.duplicates}, "quarantined": {stats.rejected}}}')
