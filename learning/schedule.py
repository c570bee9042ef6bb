"""Beat entries of the learning layer (plain data: no Django imports). `pulse.fan_out` runs each
task once per active tenant, in that tenant's schema."""

SCHEDULE = {
    "learning-recalibrate": {"task": "pulse.fan_out", "schedule": 3600.0,
                             "args": ["learning.tasks.thresholds_recalibrate"]},
    "learning-drift": {"task": "pulse.fan_out", "schedule": 6 * 3600.0, "args": ["learning.tasks.drift_check"]},
    "learning-retrain": {"task": "pulse.fan_out", "schedule": 7 * 86_400.0, "args": ["learning.tasks.retrain_scheduled"]},
    "learning-log-prune": {"task": "pulse.fan_out", "schedule": 86_400.0, "args": ["learning.tasks.log_prune"]},
}
