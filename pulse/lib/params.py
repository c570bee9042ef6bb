"""Query parameter parsing shared by the list endpoints: clear 400s instead of 500s."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError


def parse_moment(value: str | None, name: str, *, tz: str = "UTC", end_of_day: bool = False) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is read in the tenant's time zone."""
    if value in (None, ""):
        return None
    moment: Any = None
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime.combine(day, time.max if end_of_day else time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationError({name: [f"'{value}' is not an ISO 8601 date or date-time."]})
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment
