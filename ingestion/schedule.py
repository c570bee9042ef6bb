"""Beat entries of the ingestion layer (plain data)."""

SCHEDULE = {
    "ingestion-batches-sweep": {"task": "pulse.fan_out", "schedule": 30.0, "args": ["ingestion.batches_sweep"]},
    "ingestion-partitions-ahead": {"task": "pulse.fan_out", "schedule": 3600.0, "args": ["ingestion.partitions_ahead"]},
}
