"""Keyset (cursor) pagination, newest first, on (time field, id): stable under concurrent inserts and
cheap at any depth, unlike OFFSET."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _encode(moment: datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{pk}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        moment, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(moment), int(pk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError({"cursor": ["Invalid cursor."]}) from exc


def keyset_page(queryset: QuerySet[Any], request: Request, *, time_field: str) -> tuple[list[Any], str | None]:
    """One page of `queryset` ordered newest first, and the cursor of the next page (or None)."""
    try:
        limit = min(int(request.query_params.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
    except ValueError as exc:
        raise ValidationError({"limit": ["Must be an integer."]}) from exc
    if limit < 1:
        raise ValidationError({"limit": ["Must be at least 1."]})
    cursor = request.query_params.get("cursor")
    if cursor:
        moment, pk = _decode(cursor)
        queryset = queryset.filter(Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "pk__lt": pk}))
    rows = list(queryset.order_by(f"-{time_field}", "-pk")[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode(getattr(last, time_field), last.pk)
    return rows, next_cursor


def page_response(request: Request, results: list[Any], next_cursor: str | None) -> dict[str, Any]:
    next_url = None
    if next_cursor:
        params = request.query_params.copy()
        params["cursor"] = next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
    return {"results": results, "next": next_url, "next_cursor": next_cursor}
