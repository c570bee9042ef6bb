"""Webhook, Slack and email transports against real receivers on 127.0.0.1 (and Django's locmem mail)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest
from django.core import mail

from alerts.models import Channel, Delivery
from alerts.services import channel_create, channel_test, delivery_send
from alerts.transports import sign_body
from tests.alerts.conftest import make_anomaly


def _verify(secret: str, req) -> bool:  # type: ignore[no-untyped-def]
    """What a receiver does (documented in the README)."""
    timestamp = req.headers["x-pulse-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, req.headers["x-pulse-signature"]) and abs(time.time() - int(timestamp)) < 300


def _alert_delivery(channel: Channel) -> Delivery:
    import uuid

    from alerts import rendering
    from alerts.models import Alert
    from scoring.services import anomalies_record

    (anomaly,) = anomalies_record(anomalies=[make_anomaly(fingerprint=f"kpi:test:{uuid.uuid4().hex}")])
    alert = Alert.objects.create(fingerprint=anomaly.fingerprint, title=rendering.anomaly_title(anomaly), kind="kpi",
                                 metric="revenue", severity="high", peak_severity="high", count=3,
                                 first_anomaly=anomaly, last_anomaly=anomaly)
    payload = rendering.alert_payload(alert=alert, anomaly=anomaly, event="alert.opened", tenant_slug="test-a",
                                      tz=__import__("zoneinfo").ZoneInfo("Europe/Paris"), base_url="https://pulse.example")
    return Delivery.objects.create(channel=channel, alert=alert, kind="alert", event="alert.opened",
                                   fingerprint=alert.fingerprint, severity="high", payload=payload)


def test_webhook_is_signed_and_carries_the_content(tenant_a, receiver) -> None:
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url})
    secret = channel.config["secret"]
    assert secret.startswith("whsec_")
    delivery = _alert_delivery(channel)
    delivery_send(delivery_id=delivery.pk)
    (req,) = receiver.requests
    assert _verify(secret, req)
    assert req.headers["x-pulse-delivery"] == str(delivery.key)
    assert req.headers["x-pulse-event"] == "alert.opened"
    body = req.json()
    assert body["type"] == "alert.opened" and body["alert"]["count"] == 3
    anomaly = body["anomaly"]
    assert anomaly["expected"] == 2100.0 and anomaly["observed"] == 1234.0
    assert anomaly["url"] == f"https://pulse.example/anomalies/{anomaly['id']}"
    assert anomaly["root_cause"][0]["value"] == "spring-sale"
    summary = body["summary"]
    fields = dict(summary["fields"])
    assert "1,234 observed vs 2,100 expected (-41%)" == fields["Expected vs observed"]
    assert "revenue at risk: 866 USD" == fields["Impact"]
    assert fields["Where"] == "channel=email" and fields["When"].endswith("CET")
    assert summary["reasons"] == ["robust_z: revenue 6.1 MAD below the seasonal median"]
    assert summary["root_cause"] == ["campaign=spring-sale (contribution -71%)"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 1, 200)
    assert delivery.duration_ms is not None and delivery.sent_at is not None


def test_signature_helper_matches_the_documented_scheme() -> None:
    assert sign_body("s3cret-s3cret-s3cret", "1700000000", b'{"a":1}') == "sha256=" + hmac.new(
        b"s3cret-s3cret-s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()


def test_webhook_retries_500_with_the_same_delivery_id(tenant_a, receiver) -> None:
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url, "secret": "x" * 32})
    receiver.respond(500)
    receiver.respond(500)
    delivery = _alert_delivery(channel)
    delivery_send(delivery_id=delivery.pk)
    assert len(receiver.requests) == 3
    assert len({r.headers["x-pulse-delivery"] for r in receiver.requests}) == 1
    assert all(_verify("x" * 32, r) for r in receiver.requests)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 3, 200)


def test_webhook_transient_failure_is_scheduled_again_not_disabled(tenant_a, receiver, django_capture_on_commit_callbacks) -> None:
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url, "secret": "x" * 32})
    for _ in range(3):
        receiver.respond(503)
    delivery = _alert_delivery(channel)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    channel.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 3 and delivery.response_code == 503
    assert delivery.next_attempt_at is not None and len(callbacks) == 1  # re-enqueued with a countdown
    assert channel.is_enabled


def test_webhook_400_is_not_retried_and_disables_the_channel(tenant_a, receiver) -> None:
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url})
    receiver.respond(400, b"unknown event")
    delivery = _alert_delivery(channel)
    delivery_send(delivery_id=delivery.pk)
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    channel.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 400)
    assert "unknown event" in delivery.error
    assert not channel.is_enabled and "HTTP 400" in channel.disabled_reason and channel.disabled_at
    # Later deliveries to a disabled channel are cancelled with the reason, not sent.
    later = _alert_delivery(channel)
    delivery_send(delivery_id=later.pk)
    later.refresh_from_db()
    assert later.status == "cancelled" and "HTTP 400" in later.error and len(receiver.requests) == 1


def test_webhook_redirect_is_a_permanent_failure(tenant_a, receiver) -> None:
    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url})
    receiver.respond(301, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    delivery = _alert_delivery(channel)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "redirect" in delivery.error and len(receiver.requests) == 1


def test_crash_after_send_resends_with_the_same_idempotency_key(tenant_a, receiver, monkeypatch) -> None:
    """The worker dies after the receiver got the request but before the outcome was stored: the
    claim expires and the retry carries the same X-Pulse-Delivery, so the receiver can drop it."""
    from datetime import timedelta

    from django.utils import timezone

    from alerts import services

    channel = channel_create(kind="webhook", name="ops", config={"url": receiver.url})
    delivery = _alert_delivery(channel)

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise SystemExit("worker killed")

    monkeypatch.setattr(services, "_record_success", crash)
    with pytest.raises(SystemExit):
        delivery_send(delivery_id=delivery.pk)
    monkeypatch.undo()
    delivery.refresh_from_db()
    assert delivery.status == "sending" and len(receiver.requests) == 1
    # A duplicate task inside the lease does nothing ...
    assert delivery_send(delivery_id=delivery.pk) is None
    # ... after the lease the recovery sweep hands it out again.
    later = timezone.now() + services.CLAIM_LEASE + timedelta(seconds=1)
    assert delivery_send(delivery_id=delivery.pk, now=later) is not None
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["x-pulse-delivery"] == receiver.requests[1].headers["x-pulse-delivery"]
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2
    # A sent delivery is never sent again.
    assert delivery_send(delivery_id=delivery.pk, now=later + services.CLAIM_LEASE * 2) is None


def test_slack_blocks(tenant_a, receiver) -> None:
    channel = channel_create(kind="slack", name="#alerts", config={"webhook_url": receiver.url})
    delivery = _alert_delivery(channel)
    delivery_send(delivery_id=delivery.pk)
    (req,) = receiver.requests
    body = req.json()
    assert body["text"].startswith("[high] New: KPI anomaly: revenue down")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "actions" in kinds
    text = json.dumps(body["blocks"])
    assert "Expected vs observed" in text and "spring-sale" in text and "robust_z" in text
    button = body["blocks"][-1]["elements"][0]
    assert button["url"].startswith("https://pulse.example/anomalies/")


def test_slack_404_disables(tenant_a, receiver) -> None:
    channel = channel_create(kind="slack", name="#alerts", config={"webhook_url": receiver.url})
    receiver.respond(404, b"no_service")
    delivery_send(delivery_id=_alert_delivery(channel).pk)
    channel.refresh_from_db()
    assert not channel.is_enabled and "no_service" in channel.disabled_reason


def test_email_has_text_and_html_bodies(tenant_a) -> None:
    channel = channel_create(kind="email", name="ops mail", config={"recipients": ["ops@shop.test", "cfo@shop.test"]})
    delivery = _alert_delivery(channel)
    delivery_send(delivery_id=delivery.pk)
    (message,) = mail.outbox
    assert message.to == ["ops@shop.test", "cfo@shop.test"]
    assert message.subject == "[PulseEcom] HIGH New: KPI anomaly: revenue down (channel=email)"
    assert "1,234 observed vs 2,100 expected (-41%)" in message.body
    assert "campaign=spring-sale" in message.body and "https://pulse.example/anomalies/" in message.body
    html, mime = message.alternatives[0]
    assert mime == "text/html" and "<table" in html and "robust_z" in html
    assert message.extra_headers["Message-ID"] == f"<{delivery.key}@pulse.localhost>"
    delivery.refresh_from_db()
    assert delivery.status == "sent"


def test_email_config_is_validated(tenant_a) -> None:
    from alerts.transports import ChannelConfigError

    with pytest.raises(ChannelConfigError) as err:
        channel_create(kind="email", name="bad", config={"recipients": ["not-an-address"]})
    assert "not-an-address" in str(err.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_email_through_a_real_smtp_server(tenant_a, settings) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message as MessageHandler

    received = []

    class Collect(MessageHandler):
        def handle_message(self, message):  # type: ignore[no-untyped-def]
            received.append(message)

    port = _free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
        channel = channel_create(kind="email", name="smtp", config={"recipients": ["ops@shop.test"]})
        delivery = channel_test(channel=channel)
    finally:
        controller.stop()
    assert delivery.status == "sent", delivery.error
    (message,) = received
    assert message["To"] == "ops@shop.test" and "Test notification" in message["Subject"]
    types = sorted(part.get_content_type() for part in message.walk() if not part.is_multipart())
    assert types == ["text/html", "text/plain"]


def test_email_smtp_unreachable_is_transient(tenant_a, settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _free_port(), 2
    channel = channel_create(kind="email", name="smtp", config={"recipients": ["ops@shop.test"]})
    delivery = channel_test(channel=channel)
    channel.refresh_from_db()
    assert delivery.status == "failed" and "Connection" in delivery.error and channel.is_enabled
