"""Beat entries of the scoring layer (plain data: no Django imports here)."""

SCHEDULE = {
    "scoring-calibration-refresh": {"task": "pulse.fan_out", "schedule": 3600.0,
                                    "args": ["scoring.calibration_refresh"]},
}
