"""The alerting API: channels (secrets masked, private URLs refused, test sends), policies, alerts with
their deliveries and cursor pagination, snoozes, permissions."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.models import Alert, Channel, Delivery, Snooze
from alerts.services import channel_create, policy_create
from tests.alerts.conftest import T0


def _create_webhook(client, url: str, **extra: Any):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/alert-channels", {"kind": "webhook", "name": "ops", "config": {"url": url, **extra}},
                       format="json")


def test_channel_secret_is_shown_once_then_masked(tenant_a, receiver) -> None:
    client = tenant_a.client("admin")
    created = _create_webhook(client, receiver.url)
    assert created.status_code == 201, created.content
    secret = created.json()["config"]["secret"]
    assert secret.startswith("whsec_") and len(secret) > 20
    channel_id = created.json()["id"]
    for response in (client.get("/api/v1/alert-channels"), client.get(f"/api/v1/alert-channels/{channel_id}")):
        text = response.content.decode()
        assert secret not in text and secret[-4:] in text
    # Sending the masked value back (or leaving it out) keeps the secret.
    shown = client.get(f"/api/v1/alert-channels/{channel_id}").json()["config"]
    patched = client.patch(f"/api/v1/alert-channels/{channel_id}", {"name": "ops2", "config": shown}, format="json")
    assert patched.status_code == 200 and secret not in patched.content.decode()
    assert Channel.objects.get(pk=channel_id).config["secret"] == secret
    client.patch(f"/api/v1/alert-channels/{channel_id}", {"config": {"url": receiver.url + "2"}}, format="json")
    assert Channel.objects.get(pk=channel_id).config == {"url": receiver.url + "2", "secret": secret}


def test_slack_url_is_masked(tenant_a, receiver) -> None:
    client = tenant_a.client("admin")
    url = receiver.url + "/T000/B000/XXXXSECRETXXXX"
    created = client.post("/api/v1/alert-channels", {"kind": "slack", "name": "#ops", "config": {"webhook_url": url}},
                          format="json")
    assert created.status_code == 201
    listed = client.get("/api/v1/alert-channels").content.decode()
    assert "SECRET" not in listed and "127.0.0.1" in listed


@pytest.mark.parametrize("body,field", [
    ({"kind": "webhook", "name": "x", "config": {"url": "ftp://example.com"}}, "config.url"),
    ({"kind": "webhook", "name": "x", "config": {"url": "http://example.com", "secret": "short"}}, "config.secret"),
    ({"kind": "webhook", "name": "x", "config": {"url": "http://example.com", "extra": 1}}, "config.extra"),
    ({"kind": "email", "name": "x", "config": {"recipients": []}}, "config.recipients"),
    ({"kind": "pager", "name": "x", "config": {}}, "kind"),
    ({"kind": "slack", "name": "x"}, "config"),
])
def test_invalid_channels_get_field_errors(tenant_a, body: dict, field: str) -> None:
    response = tenant_a.client("admin").post("/api/v1/alert-channels", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.content


def test_private_urls_refused_at_save_time_when_not_allowed(tenant_a, settings, receiver) -> None:
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    client = tenant_a.client("admin")
    for url in (receiver.url, f"http://localhost:{receiver.port}/hook", "http://169.254.169.254/latest"):
        response = _create_webhook(client, url)
        assert response.status_code == 400
        assert "private targets are refused" in response.json()["errors"]["config.url"][0]
    slack = client.post("/api/v1/alert-channels", {"kind": "slack", "name": "s", "config": {"webhook_url": "http://10.0.0.5/x"}},
                        format="json")
    assert slack.status_code == 400 and "config.webhook_url" in slack.json()["errors"]
    assert not Channel.objects.exists()
    # Re-enabling a channel saved earlier checks again.
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = True
    channel = channel_create(kind="webhook", name="old", config={"url": receiver.url}, is_enabled=False)
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    response = client.patch(f"/api/v1/alert-channels/{channel.pk}", {"is_enabled": True}, format="json")
    assert response.status_code == 400 and not Channel.objects.get(pk=channel.pk).is_enabled


def test_channel_test_endpoint_reports_the_outcome(tenant_a, receiver) -> None:
    client = tenant_a.client("admin")
    channel_id = _create_webhook(client, receiver.url).json()["id"]
    ok = client.post(f"/api/v1/alert-channels/{channel_id}/test")
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert ok.json()["delivery"]["response_code"] == 200
    assert receiver.requests[0].json()["type"] == "test"
    receiver.respond(410, b"gone")
    failed = client.post(f"/api/v1/alert-channels/{channel_id}/test").json()
    assert failed["ok"] is False and failed["delivery"]["status"] == "failed" and "410" in failed["delivery"]["error"]
    assert Channel.objects.get(pk=channel_id).is_enabled  # a failed test does not disable


def test_config_writes_need_admin(tenant_a, receiver) -> None:
    reader = tenant_a.client("read")
    assert reader.get("/api/v1/alert-channels").status_code == 200
    assert _create_webhook(reader, receiver.url).status_code == 403
    assert reader.post("/api/v1/alert-policies", {"name": "p"}, format="json").status_code == 403
    assert tenant_a.client("ingest").get("/api/v1/alert-channels").status_code == 403


def test_policy_crud(tenant_a, receiver) -> None:
    client = tenant_a.client("admin")
    channel_id = _create_webhook(client, receiver.url).json()["id"]
    body = {"name": "revenue drops", "channels": [channel_id], "min_severity": "high", "kinds": ["kpi"],
            "filters": {"metrics": ["revenue"], "directions": ["down"]},
            "quiet_hours": {"start": "22:00", "end": "07:00", "allow_severity": "critical"}, "cooldown_seconds": 600}
    created = client.post("/api/v1/alert-policies", body, format="json")
    assert created.status_code == 201, created.content
    policy = created.json()
    assert policy["channels"] == [channel_id] and policy["quiet_hours"]["start"] == "22:00"
    patched = client.patch(f"/api/v1/alert-policies/{policy['id']}", {"digest_minutes": 30, "channels": []}, format="json")
    assert patched.status_code == 200 and patched.json()["digest_minutes"] == 30 and patched.json()["channels"] == []
    assert patched.json()["name"] == "revenue drops"
    bad = client.post("/api/v1/alert-policies", {"name": "x", "filters": {"metric": "x"}, "kinds": ["nope"],
                                                  "quiet_hours": {"start": "9", "end": "10:00"}, "channels": [999999]},
                      format="json")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"filters", "kinds", "quiet_hours", "channels"}
    assert client.delete(f"/api/v1/alert-policies/{policy['id']}").status_code == 204
    assert client.get(f"/api/v1/alert-policies/{policy['id']}").status_code == 404


def _alerts(n: int) -> list[Alert]:
    rows = []
    for i in range(n):
        rows.append(Alert.objects.create(fingerprint=f"fp-{i}", title=f"alert {i}", kind="kpi" if i % 2 else "stock",
                                         metric="revenue", severity="high" if i % 3 == 0 else "low",
                                         peak_severity="high" if i % 3 == 0 else "low", count=i + 1,
                                         status="open" if i % 4 else "resolved"))
    return rows


def test_alerts_list_newest_first_with_deliveries_and_cursor(tenant_a, receiver) -> None:
    rows = _alerts(7)
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url})
    Delivery.objects.create(channel=channel, alert=rows[6], kind="alert", event="alert.opened", status="sent",
                            attempts=2, response_code=200, payload={})
    client = tenant_a.client("read")
    page = client.get("/api/v1/alerts?limit=3").json()
    assert [a["title"] for a in page["results"]] == ["alert 6", "alert 5", "alert 4"]
    (delivery,) = page["results"][0]["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 2 and delivery["channel_name"] == "ops"
    seen = [a["id"] for a in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [a["id"] for a in page["results"]]
    assert seen == sorted((r.pk for r in rows), reverse=True)


def test_alerts_filters(tenant_a) -> None:
    _alerts(8)
    client = tenant_a.client("read")

    def titles(query: str) -> set[str]:
        response = client.get(f"/api/v1/alerts?{query}")
        assert response.status_code == 200, response.content
        return {a["title"] for a in response.json()["results"]}

    assert titles("status=resolved") == {"alert 0", "alert 4"}
    assert titles("severity=high") == {"alert 0", "alert 3", "alert 6"}
    assert titles("kind=stock&status=open") == {"alert 2", "alert 6"}
    assert titles("fingerprint=fp-5") == {"alert 5"}
    assert titles(f"from={T0.isoformat().replace('+00:00', 'Z')}") == {f"alert {i}" for i in range(8)}
    assert titles("to=2000-01-01T00:00:00Z") == set()
    bad = client.get("/api/v1/alerts?severity=huge&from=yesterday")
    assert bad.status_code == 400 and {"severity", "from"} <= set(bad.json()["errors"])


def test_alert_detail_and_snooze_endpoints(tenant_a) -> None:
    (alert,) = _alerts(1)
    triage = tenant_a.client("ingest")  # ingest keys carry `triage`
    assert tenant_a.client("read").post(f"/api/v1/alerts/{alert.pk}/snooze", {"minutes": 30}, format="json").status_code == 403
    created = triage.post(f"/api/v1/alerts/{alert.pk}/snooze", {"minutes": 30, "reason": "deploy"}, format="json")
    assert created.status_code == 201, created.content
    snooze = created.json()
    assert snooze["fingerprint"] == "fp-0" and snooze["active"] and snooze["created_by"].startswith("api-key:")
    by_entity = triage.post("/api/v1/snoozes", {"entity": "cust-9", "until": "2999-01-01T00:00:00Z"}, format="json")
    assert by_entity.status_code == 201
    assert triage.post("/api/v1/snoozes", {"minutes": 5}, format="json").status_code == 400
    assert triage.post("/api/v1/snoozes", {"entity": "x", "until": "2000-01-01T00:00:00Z"}, format="json").status_code == 400
    reader = tenant_a.client("read")
    assert {s["id"] for s in reader.get("/api/v1/snoozes").json()} == {snooze["id"], by_entity.json()["id"]}
    cancelled = triage.delete(f"/api/v1/snoozes/{snooze['id']}").json()
    assert cancelled["active"] is False and cancelled["cancelled_at"]
    assert [s["id"] for s in reader.get("/api/v1/snoozes").json()] == [by_entity.json()["id"]]
    assert len(reader.get("/api/v1/snoozes?all=1").json()) == 2
    assert Snooze.objects.get(pk=snooze["id"]).reason == "deploy"
    detail = reader.get(f"/api/v1/alerts/{alert.pk}")
    assert detail.status_code == 200 and detail.json()["fingerprint"] == "fp-0"
    assert reader.get("/api/v1/alerts/999999").status_code == 404


def test_policy_api_output_matches_design_contract(tenant_a, receiver) -> None:
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url})
    policy_create(name="p", channels=[channel])
    keys = set(tenant_a.client("read").get("/api/v1/alert-policies").json()[0])
    assert {"name", "channels", "min_severity", "kinds", "filters", "quiet_hours", "cooldown_seconds"} <= keys


def test_policy_cannot_reference_another_tenants_channel(tenant_a, tenant_b) -> None:
    from django.db import connection

    connection.set_tenant(tenant_b.tenant)
    b_channel = Channel.objects.create(kind="webhook", name="b", config={"url": "https://b.example", "secret": "x" * 20})
    connection.set_tenant(tenant_a.tenant)
    assert not Channel.objects.filter(pk=b_channel.pk).exists()
    response = tenant_a.client("admin").post("/api/v1/alert-policies", {"name": "p", "channels": [b_channel.pk]},
                                             format="json")
    assert response.status_code == 400 and "channels" in response.json()["errors"]
