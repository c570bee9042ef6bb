"""Lifecycle and noise control: grouping, idempotent dispatch, cooldown, rate cap into a digest,
snooze expiry, quiet hours, digest mode, resolve after a quiet period, order status notifications."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alerts.models import Alert, Channel, Delivery, FeedMessage, Policy
from alerts.services import (
    alerts_dispatch,
    alerts_resolve_quiet,
    channel_create,
    digests_flush,
    order_status_notify,
    policy_create,
    snooze_create,
)
from tests.alerts.conftest import T0, at, make_anomaly, record


@pytest.fixture
def hook(tenant_a, receiver, eager_celery) -> Channel:  # type: ignore[no-untyped-def]
    return channel_create(kind="webhook", name="ops", config={"url": receiver.url, "secret": "s" * 32})


@pytest.fixture
def policy(hook) -> Policy:  # type: ignore[no-untyped-def]
    return policy_create(name="everything", channels=[hook], min_severity="low")


@pytest.fixture
def alerts_config(tenant_a, monkeypatch):  # type: ignore[no-untyped-def]
    def apply(**section: Any) -> None:
        monkeypatch.setattr(tenant_a.tenant, "config", {"alerts": section})

    return apply


def _new(**overrides: Any) -> int:
    """An anomaly row without the automatic hand-off (the tests dispatch it at a chosen time)."""
    from scoring.services import anomalies_record

    (anomaly,) = anomalies_record(anomalies=[make_anomaly(**overrides)])
    return anomaly.pk


def _dispatch(capture, ids: list[int], minutes: float) -> Any:  # type: ignore[no-untyped-def]
    with capture(execute=True):
        return alerts_dispatch(anomaly_ids=ids, now=at(minutes))


def test_anomalies_with_one_fingerprint_group_into_one_alert(policy, receiver, django_capture_on_commit_callbacks) -> None:
    record(make_anomaly(severity="medium"), make_anomaly(severity="high", observed=1000.0), make_anomaly(severity="low"),
           make_anomaly(metric="orders", observed=3.0, expected=40.0), capture=django_capture_on_commit_callbacks)
    alerts = {a.metric: a for a in Alert.objects.all()}
    assert set(alerts) == {"revenue", "orders"}
    revenue = alerts["revenue"]
    assert revenue.count == 3 and revenue.peak_severity == "high" and revenue.status == "open"
    assert revenue.severity == "low"  # the latest one
    # One notification per alert, sent after commit by the (eager) worker.
    bodies = [r.json() for r in receiver.wait_for(2)]
    assert sorted(b["alert"]["metric"] for b in bodies) == ["orders", "revenue"]
    revenue_body = next(b for b in bodies if b["alert"]["metric"] == "revenue")
    assert revenue_body["type"] == "alert.opened" and revenue_body["anomaly"]["severity"] == "high"
    assert revenue_body["anomaly"]["observed"] == 1000.0  # the most severe anomaly speaks for the batch
    assert Delivery.objects.filter(status="sent").count() == 2
    # The live feed got every anomaly and both alerts, in order.
    types = list(FeedMessage.objects.order_by("id").values_list("type", flat=True))
    assert types.count("anomaly.created") == 4 and types.count("alert.opened") == 2


def test_dispatch_is_idempotent(policy, receiver, django_capture_on_commit_callbacks) -> None:
    ids = [_new(), _new()]
    first = _dispatch(django_capture_on_commit_callbacks, ids, 0)
    again = _dispatch(django_capture_on_commit_callbacks, ids, 1)
    assert first.anomalies == 2 and again.anomalies == 0
    assert Alert.objects.get().count == 2
    assert len(receiver.requests) == 1


def test_cooldown_per_fingerprint_and_channel(policy, receiver, django_capture_on_commit_callbacks) -> None:
    capture = django_capture_on_commit_callbacks
    _dispatch(capture, [_new()], 0)
    result = _dispatch(capture, [_new()], 5)  # inside the 15-minute default cooldown
    assert result.cooled_down == 1 and len(receiver.requests) == 1
    alert = Alert.objects.get()
    assert alert.count == 2
    _dispatch(capture, [_new()], 16)  # cooldown over: the update goes out, with the count
    assert len(receiver.requests) == 2
    body = receiver.requests[-1].json()
    assert body["type"] == "alert.updated" and body["alert"]["count"] == 3
    # A second channel has its own cooldown.
    other = channel_create(kind="slack", name="#ops", config={"webhook_url": receiver.url})
    policy.channels.add(other)
    _dispatch(capture, [_new()], 17)
    assert len(receiver.requests) == 3 and "blocks" in receiver.requests[-1].json()


def test_escalation_breaks_through_cooldown(policy, receiver, django_capture_on_commit_callbacks) -> None:
    capture = django_capture_on_commit_callbacks
    _dispatch(capture, [_new(severity="medium")], 0)
    _dispatch(capture, [_new(severity="medium")], 1)
    _dispatch(capture, [_new(severity="critical")], 2)
    assert [r.json()["type"] for r in receiver.requests] == ["alert.opened", "alert.escalated"]
    assert receiver.requests[-1].json()["alert"]["peak_severity"] == "critical"


def test_policy_cooldown_overrides_the_tenant_default(hook, receiver, django_capture_on_commit_callbacks) -> None:
    policy_create(name="chatty", channels=[hook], min_severity="low", cooldown_seconds=0)
    for minute in range(3):
        _dispatch(django_capture_on_commit_callbacks, [_new()], minute)
    assert len(receiver.requests) == 3


def test_rate_cap_folds_into_a_digest(policy, receiver, alerts_config, django_capture_on_commit_callbacks) -> None:
    alerts_config(rate_limit_per_hour=2, digest_interval_minutes=15)
    ids = [_new(metric=f"m{i}") for i in range(5)]
    result = _dispatch(django_capture_on_commit_callbacks, ids, 1)
    assert len(result.pending) == 2 and result.held == 3
    assert len(receiver.requests) == 2
    held = list(Delivery.objects.filter(status="held"))
    assert {d.hold_reason for d in held} == {"rate_limited"}
    assert {d.scheduled_for for d in held} == {T0 + timedelta(minutes=15)}  # one shared window
    # Nothing is due yet ...
    with django_capture_on_commit_callbacks(execute=True):
        assert digests_flush(now=at(14)) == 0
    # ... then the window closes and one digest carries all three.
    with django_capture_on_commit_callbacks(execute=True):
        assert digests_flush(now=at(15)) == 1
    assert len(receiver.requests) == 3
    digest = receiver.requests[-1].json()
    assert digest["type"] == "digest" and digest["count"] == 3 and digest["reason"] == "rate_limited"
    assert sorted(i["alert"]["metric"] for i in digest["items"]) == ["m2", "m3", "m4"]
    digest_row = Delivery.objects.get(kind="digest")
    assert digest_row.status == "sent"
    assert set(Delivery.objects.filter(digest=digest_row).values_list("status", flat=True)) == {"digested"}


def test_snooze_silences_until_it_expires(policy, receiver, django_capture_on_commit_callbacks) -> None:
    capture = django_capture_on_commit_callbacks
    anomaly_id = _new()
    from scoring.models import Anomaly

    fingerprint = Anomaly.objects.get(pk=anomaly_id).fingerprint
    snooze = snooze_create(fingerprint=fingerprint, until=at(30), created_by="api-key:abc", reason="deploy")
    _dispatch(capture, [anomaly_id], 1)
    _dispatch(capture, [_new()], 20)
    assert receiver.requests == []
    alert = Alert.objects.get()
    assert alert.count == 2 and alert.suppressed_count == 2
    _dispatch(capture, [_new()], 31)  # expired
    assert len(receiver.requests) == 1 and receiver.requests[0].json()["alert"]["count"] == 3
    assert snooze.created_by == "api-key:abc"


def test_snooze_by_entity(policy, receiver, django_capture_on_commit_callbacks) -> None:
    snooze_create(entity="cust-42", until=at(60), created_by="someone")
    _dispatch(django_capture_on_commit_callbacks,
              [_new(kind="transaction", metric="", entity="cust-42"), _new(kind="transaction", metric="", entity="cust-7")], 1)
    assert [r.json()["alert"]["entity"] for r in receiver.requests] == ["cust-7"]


def test_resolve_after_quiet_period(policy, receiver, alerts_config, django_capture_on_commit_callbacks) -> None:
    alerts_config(resolve_after_minutes=30)
    capture = django_capture_on_commit_callbacks
    _dispatch(capture, [_new()], 0)
    _dispatch(capture, [_new()], 10)
    with capture(execute=True):
        assert alerts_resolve_quiet(now=at(39)) == 0
    with capture(execute=True):
        assert alerts_resolve_quiet(now=at(41)) == 1
    alert = Alert.objects.get()
    assert alert.status == "resolved" and alert.resolved_at == at(41)
    resolved = receiver.requests[-1].json()
    assert resolved["type"] == "alert.resolved" and resolved["alert"]["count"] == 2
    assert FeedMessage.objects.filter(type="alert.resolved").count() == 1
    # The fingerprint comes back later: a new alert opens.
    _dispatch(capture, [_new()], 120)
    assert Alert.objects.filter(status="open").count() == 1 and Alert.objects.count() == 2
    assert receiver.requests[-1].json()["type"] == "alert.opened"


def test_quiet_hours_hold_until_morning_in_tenant_time(hook, receiver, django_capture_on_commit_callbacks) -> None:
    capture = django_capture_on_commit_callbacks
    # T0 is 12:00 UTC; tenant A is on UTC. Quiet from 11:00 to 13:30, critical still passes.
    policy_create(name="night", channels=[hook], min_severity="low",
                  quiet_hours={"start": "11:00", "end": "13:30", "allow_severity": "critical"})
    _dispatch(capture, [_new(severity="high")], 0)
    assert receiver.requests == []
    held = Delivery.objects.get(status="held")
    assert held.hold_reason == "quiet_hours" and held.scheduled_for == at(90)
    _dispatch(capture, [_new(metric="orders", severity="critical")], 1)
    assert len(receiver.requests) == 1 and receiver.requests[0].json()["alert"]["metric"] == "orders"
    with capture(execute=True):
        digests_flush(now=at(90))
    # A single held notification goes out as itself, not as a digest of one.
    assert len(receiver.requests) == 2 and receiver.requests[-1].json()["type"] == "alert.opened"


def test_digest_mode(hook, receiver, django_capture_on_commit_callbacks) -> None:
    policy_create(name="digest", channels=[hook], min_severity="low", digest_minutes=60)
    _dispatch(django_capture_on_commit_callbacks, [_new(metric="a"), _new(metric="b")], 5)
    assert receiver.requests == []
    with django_capture_on_commit_callbacks(execute=True):
        digests_flush(now=at(60))
    (req,) = receiver.requests
    assert req.json()["type"] == "digest" and req.json()["reason"] == "digest" and req.json()["count"] == 2


def test_policy_filters_route_anomalies(hook, receiver, django_capture_on_commit_callbacks) -> None:
    policy_create(name="email revenue drops", channels=[hook], min_severity="high", kinds=["kpi"],
                  filters={"metrics": ["revenue"], "directions": ["down"], "dimensions": {"channel": ["email", "ads"]}})
    _dispatch(django_capture_on_commit_callbacks, [
        _new(severity="medium"),                                  # too mild
        _new(metric="orders"),                                    # other metric
        _new(direction="up", fingerprint="up"),                  # other direction
        _new(dimensions={"channel": "seo"}),                     # other dimension value
        _new(kind="stock", fingerprint="stock"),                 # other kind
        _new(dimensions={"channel": "ads"}, severity="critical"),  # matches
    ], 0)
    (req,) = receiver.requests
    assert req.json()["anomaly"]["dimensions"] == {"channel": "ads"}


def test_disabled_channel_gets_nothing(policy, hook, receiver, django_capture_on_commit_callbacks) -> None:
    from alerts.services import channel_update

    channel_update(channel=hook, is_enabled=False)
    result = _dispatch(django_capture_on_commit_callbacks, [_new()], 0)
    assert result.pending == [] and receiver.requests == []


def test_send_time_refusal_of_private_address(tenant_a, receiver, settings, eager_celery,
                                              django_capture_on_commit_callbacks) -> None:
    """Saved while private targets were allowed; when the setting is off the resolved address is checked
    again at send time: nothing leaves, the delivery fails and the channel is disabled with the reason."""
    channel = channel_create(kind="webhook", name="local", config={"url": f"http://localhost:{receiver.port}/hook"})
    policy_create(name="p", channels=[channel], min_severity="low")
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    _dispatch(django_capture_on_commit_callbacks, [_new()], 0)
    assert receiver.requests == []
    delivery = Delivery.objects.get()
    channel.refresh_from_db()
    assert delivery.status == "failed" and "loopback" in delivery.error
    assert not channel.is_enabled and "loopback" in channel.disabled_reason


def test_order_status_notifications(hook, receiver, django_capture_on_commit_callbacks) -> None:
    policy_create(name="orders", channels=[hook], notify_anomalies=False, notify_order_status=True,
                  order_statuses=["shipped", "delivered"])
    changes = [
        {"order_id": "o-1", "status": "shipped", "previous_status": "confirmed", "occurred_at": T0, "event_id": "e1"},
        {"order_id": "o-2", "status": "cancelled", "previous_status": "pending", "occurred_at": T0, "event_id": "e2"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        order_status_notify(changes=changes)
    (req,) = receiver.requests
    body = req.json()
    assert body["type"] == "order.status_changed" and req.headers["x-pulse-event"] == "order.status_changed"
    assert body["order"] == {"order_id": "o-1", "status": "shipped", "previous_status": "confirmed",
                             "occurred_at": T0.isoformat(), "event_id": "e1"}
    assert Delivery.objects.get().kind == "order_status"
    # Anomalies do not go to a policy that only follows orders.
    _dispatch(django_capture_on_commit_callbacks, [_new()], 0)
    assert len(receiver.requests) == 1


def test_order_status_without_subscribers_is_cheap(tenant_a, django_assert_max_num_queries) -> None:
    # One SELECT of the policies (plus django-tenants' SET search_path).
    with django_assert_max_num_queries(2):
        order_status_notify(changes=[{"order_id": "o", "status": "shipped", "previous_status": None,
                                      "occurred_at": T0, "event_id": "e"}])


def test_lost_hand_off_is_recovered(policy, receiver, django_capture_on_commit_callbacks) -> None:
    """A delivery whose enqueue was lost (process died right after commit) is found and sent by the tick."""
    from alerts.services import deliveries_recover

    with django_capture_on_commit_callbacks(execute=False):  # the hand-off never runs
        alerts_dispatch(anomaly_ids=[_new()], now=at(0))
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and receiver.requests == []
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_recover(now=at(1)) == 0  # too fresh: its task may still be on the way
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_recover(now=at(3)) == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and len(receiver.requests) == 1


def test_an_anomaly_whose_hand_off_was_lost_is_dispatched_by_the_tick(policy, receiver,
                                                                       django_capture_on_commit_callbacks) -> None:
    """The process died between an anomaly's commit and its Celery message (or before a hand-off
    deferred until after the answer left): the tick dispatches it, once, and only once it is stale."""
    from alerts.models import AlertAnomaly
    from alerts.services import anomalies_recover

    lost = _new()  # recorded at T0; its on-commit hand-off never runs in a test transaction
    dispatched = _new(metric="orders")
    ancient = _new(metric="sessions", detected_at=at(-60 * 25))  # over a day old: history, not a lost hand-off
    _dispatch(django_capture_on_commit_callbacks, [dispatched], 0)
    assert not AlertAnomaly.objects.filter(anomaly_id=lost).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert anomalies_recover(now=at(1)) == 0  # too fresh: its task may still be on the way
    with django_capture_on_commit_callbacks(execute=True):
        assert anomalies_recover(now=at(3)) == 1
    assert AlertAnomaly.objects.filter(anomaly_id=lost).exists()
    assert Alert.objects.filter(metric="revenue").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert anomalies_recover(now=at(4)) == 0
    assert not AlertAnomaly.objects.filter(anomaly_id=ancient).exists()
    assert Delivery.objects.count() == 2


def test_feed_prune_keeps_recent_messages(tenant_a, alerts_config) -> None:
    from alerts.services import feed_prune

    alerts_config(feed_retention_hours=2)
    old = FeedMessage.objects.create(type="x", payload={}, created_at=at(-180))
    recent = FeedMessage.objects.create(type="x", payload={}, created_at=at(-60))
    assert feed_prune(now=at(0)) == 1
    assert list(FeedMessage.objects.values_list("id", flat=True)) == [recent.pk] and old.pk != recent.pk


def test_beat_runs_the_tick_for_every_tenant() -> None:
    from pulse.celery import collect_beat_schedule

    schedule = collect_beat_schedule()
    assert schedule["alerts-tick"] == {"task": "pulse.fan_out", "schedule": 60.0, "args": ["alerts.tasks.alerts_tick"]}


def test_tick_task_runs_in_the_tenant(policy, receiver, alerts_config, eager_celery) -> None:
    from alerts.tasks import alerts_tick

    alerts_config(resolve_after_minutes=1)
    Alert.objects.create(fingerprint="old", title="old", kind="kpi", severity="low", peak_severity="low", count=1,
                         last_seen_at=T0)
    assert alerts_tick.apply().get() == {"anomalies_recovered": 0, "digests": 0, "resolved": 1, "recovered": 0}
    assert Alert.objects.get().status == "resolved"


def test_many_fingerprints_open_and_update_in_a_fixed_number_of_queries(tenant_a, django_capture_on_commit_callbacks,
                                                                        django_assert_max_num_queries) -> None:
    """A batch of fraud anomalies is mostly one alert per customer: opening or updating them costs the
    same few statements for 3 groups as for 60, and each anomaly ends up linked to its alert."""
    _dispatch(django_capture_on_commit_callbacks, [_new(kind="transaction", metric="", entity="cust-0", severity="low")], 0)
    ids = [_new(kind="transaction", metric="", entity=f"cust-{i % 60}", severity="critical" if i == 0 else "medium",
                occurred_at=at(i / 10)) for i in range(120)]
    with django_assert_max_num_queries(16):
        result = _dispatch(django_capture_on_commit_callbacks, ids, 5)
    assert (result.anomalies, result.alerts_opened, result.alerts_updated) == (120, 59, 1)
    alerts = {a.entity: a for a in Alert.objects.filter(kind="transaction")}
    assert len(alerts) == 60
    assert alerts["cust-0"].count == 3 and alerts["cust-0"].peak_severity == "critical"
    assert alerts["cust-7"].count == 2 and alerts["cust-7"].peak_severity == "medium"
    assert alerts["cust-7"].last_seen_at == at(5)
    from alerts.models import AlertAnomaly

    linked = dict(AlertAnomaly.objects.filter(anomaly_id__in=ids).values_list("anomaly_id", "alert__entity"))
    assert all(linked[pk] == f"cust-{i % 60}" for i, pk in enumerate(ids))
    types = list(FeedMessage.objects.filter(type__startswith="alert.").values_list("type", flat=True))
    assert types.count("alert.opened") == 60 and types.count("alert.escalated") == 1
