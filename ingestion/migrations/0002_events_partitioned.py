"""The events table: native range partitioning by month on occurred_at. Partitions are created ahead
by `ingestion.storage.partitions_ensure` (before each write and from beat); the default partition
only catches what would otherwise fail and should stay empty."""

from __future__ import annotations

from django.db import migrations

DIMENSIONS = ["type", "channel", "campaign", "product_id", "store_id", "customer_id", "order_id"]

CREATE = """
CREATE SEQUENCE events_id_seq;
CREATE TABLE events (
    id bigint NOT NULL DEFAULT nextval('events_id_seq'),
    batch_id bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    event_id varchar(128) NOT NULL,
    type varchar(16) NOT NULL,
    occurred_at timestamptz NOT NULL,
    customer_id varchar(128), session_id varchar(128), order_id varchar(128),
    channel varchar(128), campaign varchar(128), product_id varchar(128), store_id varchar(128),
    country varchar(2), amount numeric(18, 4), currency varchar(3), quantity bigint, status varchar(32),
    ip varchar(64), device_id varchar(128), payment_method varchar(128), email_hash varchar(128),
    stock_level bigint, threshold bigint, metric varchar(64), value double precision, attributes jsonb,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_batch ON events (batch_id);
""" + "\n".join(
    f"CREATE INDEX events_{dim} ON events ({dim}, occurred_at)"
    + ("" if dim == "type" else f" WHERE {dim} IS NOT NULL") + ";"
    for dim in DIMENSIONS
)


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0001_initial")]
    operations = [migrations.RunSQL(CREATE, "DROP TABLE IF EXISTS events CASCADE;")]
