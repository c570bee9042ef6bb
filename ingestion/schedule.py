"""Beat entries of the ingestion layer (plain data)."""

SCHEDULE = {
    "ingestion-batches-sweep": {"task": "pulse.fan_out", "schedule": 30.0, "args": ["ingestion.batches_sweep"]},
    "ingestion-partitions-ahead": {"task": "pulse.fan_out", "schedule": 3600.0, "args": ["ingestion.partitions_ahead"]},
    "ingestion-uploads-sweep": {"task": "pulse.fan_out", "schedule": 120.0, "args": ["ingestion.uploads_sweep"]},
    # Each source has its own poll interval; this only decides how often due sources are looked for.
    "ingestion-imports-poll": {"task": "pulse.fan_out", "schedule": 60.0, "args": ["ingestion.imports_poll"]},
    "ingestion-usage-flush": {"task": "pulse.fan_out", "schedule": 300.0, "args": ["ingestion.usage_flush"]},
}
