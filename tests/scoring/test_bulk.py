"""`scoring.bulk.rows_insert` stores exactly what `bulk_create` stores, in order, with primary keys set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, transaction
from django.forms.models import model_to_dict

from scoring.bulk import rows_insert
from scoring.models import Anomaly

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _anomalies(tag: str) -> list[Anomaly]:
    tricky = 'quote " back \\ brace {} comma , tab \t é NULL'
    return [
        Anomaly(kind="transaction", occurred_at=T0 + timedelta(seconds=i), detected_at=T0, entity=f"{tag}-{i}",
                event_ids=[f"{tag}-e{i}", tricky, "NULL", ""][: i + 1], score=0.1 * i, severity="high",
                decision="REVIEW", reasons=[{"detector": "rule", "text": tricky, "value": 1.5, "threshold": None}],
                detectors={"iforest": 0.123456, "rule": 1.0}, dimensions={"k": tricky} if i % 2 else {},
                expected=None if i % 2 else 2.5, observed=float(i), fingerprint=f"{tag}:{i}",
                feedback=None if i % 2 else {"label": "fraud"})
        for i in range(4)
    ]


def _stored(objs: list[Anomaly]) -> list[dict]:
    out = []
    for obj in Anomaly.objects.filter(pk__in=[o.pk for o in objs]).order_by("pk"):
        row = model_to_dict(obj)
        row.pop("id")
        row["entity"] = row["entity"].split("-", 1)[1]
        row["fingerprint"] = row["fingerprint"].split(":", 1)[1]
        row["event_ids"] = [e.split("-", 1)[-1] if e.startswith(("orm-", "unnest-")) else e for e in row["event_ids"]]
        out.append(row)
    return out


def test_rows_insert_matches_bulk_create(tenant_a) -> None:  # type: ignore[no-untyped-def]
    orm = Anomaly.objects.bulk_create(_anomalies("orm"))
    mine = _anomalies("unnest")
    rows_insert(Anomaly, mine)
    assert all(o.pk and not o._state.adding for o in mine)
    assert [o.pk for o in mine] == sorted(o.pk for o in mine)  # ids follow the input order
    assert [Anomaly.objects.get(pk=o.pk).entity for o in mine] == [o.entity for o in mine]
    assert _stored(mine) == _stored(orm)
    assert Anomaly.objects.get(pk=mine[1].pk).feedback is None


def test_rows_insert_still_checks_lengths(tenant_a) -> None:  # type: ignore[no-untyped-def]
    bad = _anomalies("long")[:2]
    bad[1].severity = "x" * 50  # varchar(8): refused, not truncated
    with pytest.raises(DataError), transaction.atomic():
        rows_insert(Anomaly, bad)
