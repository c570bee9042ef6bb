"""Beat entries of KPI monitoring (plain data: no Django imports). `pulse.fan_out` runs the named task
once per active tenant, in that tenant's schema."""

SCHEDULE: dict = {
    # minute buckets close every minute; hour/day series are only walked when one of theirs closed
    "monitoring-kpi-evaluate": {"task": "pulse.fan_out", "schedule": 60.0, "args": ["monitoring.kpi_evaluate"]},
    # Prophet tables: refreshed after each local midnight (a cheap no-op when fresh)
    "monitoring-kpi-fit": {"task": "pulse.fan_out", "schedule": 900.0, "args": ["monitoring.kpi_fit"]},
    "monitoring-stock-check": {"task": "pulse.fan_out", "schedule": 300.0, "args": ["monitoring.stock_check"]},
}
