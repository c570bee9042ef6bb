"""Beat entries of the platform itself (plain data: no Django imports here)."""

SCHEDULE: dict = {}
