"""Tenant A's key never sees or changes tenant B's channels, policies, alerts or snoozes."""

from __future__ import annotations

from typing import Any

from tests.isolation import IsolationCase

B_URL = "https://b-only-hooks.example/b-only-path"
B_SECRET = "whsec_b_only_secret_value_123456"


def _seed_channel(b: Any) -> dict[str, Any]:
    from alerts.models import Channel

    channel = Channel.objects.create(kind="webhook", name="b-only-channel", config={"url": B_URL, "secret": B_SECRET})
    return {"id": channel.pk, "markers": ["b-only-channel", "b-only-hooks", B_SECRET]}


def _seed_policy(b: Any) -> dict[str, Any]:
    from alerts.models import Policy

    ctx = _seed_channel(b)
    policy = Policy.objects.create(name="b-only-policy")
    policy.channels.add(ctx["id"])
    return {"id": policy.pk, "channel_id": ctx["id"], "markers": ["b-only-policy", *ctx["markers"]]}


def _seed_alert(b: Any) -> dict[str, Any]:
    from alerts.models import Alert, Delivery

    ctx = _seed_channel(b)
    alert = Alert.objects.create(fingerprint="b-only-fingerprint", title="b-only-alert", kind="kpi", severity="high",
                                 peak_severity="high", count=1)
    Delivery.objects.create(channel_id=ctx["id"], alert=alert, kind="alert", event="alert.opened", status="sent",
                            payload={}, error="b-only-error")
    return {"id": alert.pk, "markers": ["b-only-alert", "b-only-fingerprint", "b-only-error", *ctx["markers"]]}


def _seed_snooze(b: Any) -> dict[str, Any]:
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import Snooze

    snooze = Snooze.objects.create(entity="b-only-entity", until=timezone.now() + timedelta(hours=1),
                                   created_by="b-only-person")
    return {"id": snooze.pk, "markers": ["b-only-entity", "b-only-person"]}


def _channel_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from alerts.models import Channel

    channel = Channel.objects.get(pk=ctx["id"])
    assert channel.name == "b-only-channel" and channel.is_enabled and channel.config["url"] == B_URL


def _no_test_delivery(b: Any, ctx: dict[str, Any]) -> None:
    from alerts.models import Delivery

    assert not Delivery.objects.filter(channel_id=ctx["id"], kind="test").exists()
    _channel_unchanged(b, ctx)


def _policy_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from alerts.models import Policy

    policy = Policy.objects.get(pk=ctx["id"])
    assert policy.name == "b-only-policy" and list(policy.channels.values_list("id", flat=True)) == [ctx["channel_id"]]


def _snooze_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from alerts.models import Snooze

    assert Snooze.objects.get(pk=ctx["id"]).cancelled_at is None


def _no_snooze_on_b_alert(b: Any, ctx: dict[str, Any]) -> None:
    from alerts.models import Snooze

    assert not Snooze.objects.filter(fingerprint="b-only-fingerprint").exists()


ISOLATION_CASES = [
    IsolationCase("list alert channels", "get", lambda ctx: "/api/v1/alert-channels", _seed_channel),
    IsolationCase("get B's alert channel", "get", lambda ctx: f"/api/v1/alert-channels/{ctx['id']}", _seed_channel,
                  allowed_status=(404,)),
    IsolationCase("patch B's alert channel", "patch", lambda ctx: f"/api/v1/alert-channels/{ctx['id']}", _seed_channel,
                  body={"name": "hijacked", "is_enabled": False}, allowed_status=(404,), verify_b=_channel_unchanged),
    IsolationCase("delete B's alert channel", "delete", lambda ctx: f"/api/v1/alert-channels/{ctx['id']}",
                  _seed_channel, allowed_status=(404,), verify_b=_channel_unchanged),
    IsolationCase("test B's alert channel", "post", lambda ctx: f"/api/v1/alert-channels/{ctx['id']}/test",
                  _seed_channel, body={}, allowed_status=(404,), verify_b=_no_test_delivery),
    IsolationCase("list alert policies", "get", lambda ctx: "/api/v1/alert-policies", _seed_policy),
    IsolationCase("get B's alert policy", "get", lambda ctx: f"/api/v1/alert-policies/{ctx['id']}", _seed_policy,
                  allowed_status=(404,)),
    IsolationCase("patch B's alert policy", "patch", lambda ctx: f"/api/v1/alert-policies/{ctx['id']}", _seed_policy,
                  body={"name": "hijacked", "channels": []}, allowed_status=(404,), verify_b=_policy_unchanged),
    IsolationCase("delete B's alert policy", "delete", lambda ctx: f"/api/v1/alert-policies/{ctx['id']}",
                  _seed_policy, allowed_status=(404,), verify_b=_policy_unchanged),
    IsolationCase("list alerts", "get", lambda ctx: "/api/v1/alerts", _seed_alert),
    IsolationCase("get B's alert", "get", lambda ctx: f"/api/v1/alerts/{ctx['id']}", _seed_alert, allowed_status=(404,)),
    IsolationCase("snooze B's alert", "post", lambda ctx: f"/api/v1/alerts/{ctx['id']}/snooze", _seed_alert,
                  body={"minutes": 10}, allowed_status=(404,), verify_b=_no_snooze_on_b_alert),
    IsolationCase("list snoozes", "get", lambda ctx: "/api/v1/snoozes?all=1", _seed_snooze),
    IsolationCase("get B's snooze", "get", lambda ctx: f"/api/v1/snoozes/{ctx['id']}", _seed_snooze,
                  allowed_status=(404,)),
    IsolationCase("cancel B's snooze", "delete", lambda ctx: f"/api/v1/snoozes/{ctx['id']}", _seed_snooze,
                  allowed_status=(404,), verify_b=_snooze_unchanged),
]
