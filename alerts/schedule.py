"""Beat entries of the delivery layer (plain data: no Django imports here). `pulse.fan_out` runs the
named task once per active tenant, in that tenant's schema."""

SCHEDULE: dict = {
    "alerts-tick": {"task": "pulse.fan_out", "schedule": 60.0, "args": ["alerts.tasks.alerts_tick"]},
    "alerts-feed-prune": {"task": "pulse.fan_out", "schedule": 3600.0, "args": ["alerts.tasks.feed_prune"]},
}
