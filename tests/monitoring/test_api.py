"""kpi-series and calendar CRUD (admin writes, read reads), forecast and explain endpoints."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import numpy as np

from monitoring.models import SeriesFit, SeriesState, WatchedSeries
from scoring.models import KpiBucket
from tests.monitoring.helpers import T0, hourly_orders, put_hours


def test_defaults_are_created_once_and_deletions_stick(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("read")
    rows = client.get("/api/v1/kpi-series").json()
    watched = {(r["metric"], r["dimension"], r["granularity"]) for r in rows}
    for key in [("revenue", "channel", "hour"), ("ctr", "campaign", "hour"), ("conversion_rate", "campaign", "hour"),
                ("payment_failure_rate", "total", "hour"), ("return_rate", "total", "day"),
                ("conversion_rate", "total", "hour"), ("aov", "channel", "hour")]:
        assert key in watched
    admin = tenant_a.client("admin")
    first = rows[0]["id"]
    assert admin.delete(f"/api/v1/kpi-series/{first}").status_code == 204
    assert first not in {r["id"] for r in client.get("/api/v1/kpi-series").json()}


def test_kpi_series_crud_and_scopes(tenant_a) -> None:  # type: ignore[no-untyped-def]
    body = {"metric": "ctr", "dimension": "campaign", "value": "spring", "direction": "down", "min_duration": 2,
            "min_relative_change": 0.3, "detectors": ["ratio_binomial", "prophet"], "consensus": "pairwise"}
    assert tenant_a.client("read").post("/api/v1/kpi-series", body, format="json").status_code == 403
    admin = tenant_a.client("admin")
    created = admin.post("/api/v1/kpi-series", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert admin.post("/api/v1/kpi-series", body, format="json").status_code == 400  # already watched
    bad = admin.post("/api/v1/kpi-series", {**body, "value": "x", "detectors": ["magic"], "consensus": "most"},
                     format="json")
    assert bad.status_code == 400 and {"detectors", "consensus"} <= set(bad.json()["errors"] if "errors" in bad.json()
                                                                         else bad.json())
    patched = admin.patch(f"/api/v1/kpi-series/{pk}", {"enabled": False, "min_duration": 3}, format="json")
    assert patched.status_code == 200 and patched.json()["min_duration"] == 3
    assert WatchedSeries.objects.get(pk=pk).enabled is False
    client_metric = admin.post("/api/v1/kpi-series", {"metric": "cpc", "granularity": "hour"}, format="json")
    assert client_metric.status_code == 201 and client_metric.json()["granularity"] == "native"


def test_calendar_crud(tenant_a) -> None:  # type: ignore[no-untyped-def]
    admin = tenant_a.client("admin")
    body = {"name": "Black Friday", "start": "2026-11-27T00:00:00Z", "end": "2026-11-28T00:00:00Z", "action": "mark",
            "metrics": ["revenue", "orders"]}
    created = admin.post("/api/v1/calendar", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert tenant_a.client("read").get(f"/api/v1/calendar/{pk}").json()["name"] == "Black Friday"
    assert tenant_a.client("read").delete(f"/api/v1/calendar/{pk}").status_code == 403
    reversed_ = admin.post("/api/v1/calendar", {**body, "end": "2026-11-26T00:00:00Z"}, format="json")
    assert reversed_.status_code == 400
    assert admin.patch(f"/api/v1/calendar/{pk}", {"action": "mute"}, format="json").json()["action"] == "mute"
    assert admin.delete(f"/api/v1/calendar/{pk}").status_code == 204
    assert admin.get(f"/api/v1/calendar/{pk}").status_code == 404


def _fake_now(hours: int):  # type: ignore[no-untyped-def]
    return mock.patch("monitoring.api.timezone.now", return_value=T0 + timedelta(hours=hours, minutes=5))


def test_forecast_on_demand_and_from_cache(tenant_a) -> None:  # type: ignore[no-untyped-def]
    values = hourly_orders(24 * 10, seed=4)
    put_hours(values)
    client = tenant_a.client("read")
    with _fake_now(24 * 10):
        answer = client.get("/api/v1/forecast?metric=orders&granularity=hour&horizon=24")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["source"] == "fitted on demand" and len(body["points"]) == 24
    p = body["points"][0]
    assert p["t"].startswith("2026-02-12T00:00:00") and p["yhat_lower"] <= p["yhat"] <= p["yhat_upper"]
    peak = max(body["points"], key=lambda x: x["yhat"])  # the daily shape peaks in the afternoon
    assert 11 <= int(peak["t"][11:13]) <= 17
    # a cached table covering the horizon is served as is
    state = SeriesState.objects.create(metric="orders", dimension="total", value="", granularity="hour")
    start = int((T0 + timedelta(hours=24 * 10)).timestamp()) // 3600
    SeriesFit.objects.create(state=state, detector="prophet", boundary=start, table={
        "start": start, "yhat": [7.0] * 48, "lower": [5.0] * 48, "upper": [9.0] * 48})
    with _fake_now(24 * 10):
        cached = client.get("/api/v1/forecast?metric=orders&granularity=hour&horizon=24").json()
    assert cached["source"] == "cached prophet fit" and cached["points"][3]["yhat"] == 7.0


def test_forecast_bad_input_is_400(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("read")
    assert client.get("/api/v1/forecast?metric=nope").status_code == 400
    assert client.get("/api/v1/forecast?metric=orders&horizon=100000").status_code == 400
    assert client.get("/api/v1/forecast?metric=orders&granularity=year").status_code == 400
    empty = client.get("/api/v1/forecast?metric=orders")
    assert empty.status_code == 200 and empty.json()["points"] == []


def test_explain_week_over_week(tenant_a) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    rows = []
    for h in range(24 * 14):
        week2 = h >= 24 * 7
        for channel, level in (("email", 10), ("web", 20), ("ads", 5)):
            n = int(rng.poisson(level * (0.2 if (week2 and channel == "ads") else 1.0)
                                * (1.5 if (week2 and channel == "web") else 1.0)))
            rows.append(KpiBucket(granularity="hour", bucket_start=T0 + timedelta(hours=h), dimension="channel",
                                  value=channel, orders=n, revenue=n * 40, sessions=n * 25))
    KpiBucket.objects.bulk_create(rows)
    totals: dict = {}
    for r in rows:
        t = totals.setdefault(r.bucket_start, [0, 0, 0])
        t[0] += r.orders
        t[1] += r.revenue
        t[2] += r.sessions
    KpiBucket.objects.bulk_create([KpiBucket(granularity="hour", bucket_start=t, dimension="total", value="", orders=o,
                                             revenue=rv, sessions=s) for t, (o, rv, s) in totals.items()])
    client = tenant_a.client("read")
    answer = client.get("/api/v1/explain?metric=revenue&compare=wow&at=2026-02-16T00:00:00Z")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    channels = body["by"]["channel"]
    assert channels[0]["value"] == "web" and channels[0]["delta"] > 0
    assert channels[-1]["value"] == "ads" and channels[-1]["delta"] < 0
    assert body["delta"] == body["after"] - body["before"]
    ratio = client.get("/api/v1/explain?metric=conversion_rate&compare=wow&at=2026-02-16T00:00:00Z&by=channel").json()
    assert {"mix_effect", "rate_effect"} <= set(ratio["by"]["channel"][0])
    assert client.get("/api/v1/explain?metric=revenue&compare=custom").status_code == 400
    assert client.get("/api/v1/explain?metric=revenue&by=planet").status_code == 400


def test_status_reports_evaluated_buckets(tenant_a) -> None:  # type: ignore[no-untyped-def]
    from monitoring.models import MonitorState

    MonitorState.objects.create(defaults_created=True, buckets_evaluated=1234)
    body = tenant_a.client("read").get("/api/v1/status").json()
    assert body["checks"]["kpi"]["kpi_buckets_evaluated"] == 1234
