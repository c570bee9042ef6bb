"""What a notification says, kept apart from how it is sent.

Payload builders turn alerts, anomalies and order changes into the JSON document a Delivery stores
(the webhook body, verbatim). Every payload carries a `summary` written for people; email and Slack
render that summary through `message_from_payload`, so all channels tell the same story."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

KIND_LABEL = {"transaction": "Suspicious transaction", "kpi": "KPI anomaly", "stock": "Stock anomaly",
              "drift": "Model drift"}
EVENT_LABEL = {"alert.opened": "New", "alert.updated": "Ongoing", "alert.escalated": "Escalated",
               "alert.resolved": "Resolved"}
MAX_ROOT_CAUSES = 3
_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


# ----------------------------------------------------------------------------- formatting helpers

def _number(value: Any) -> str:
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:,.2f}" if abs(number) >= 1 else f"{number:.4g}"


def _when(value: datetime | str | None, tz: ZoneInfo) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def dims_text(dimensions: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((dimensions or {}).items()))


def change_text(expected: Any, observed: Any) -> str:
    if expected is None and observed is None:
        return ""
    text = f"{_number(observed)} observed vs {_number(expected)} expected"
    try:
        if expected not in (None, 0) and observed is not None:
            text += f" ({(float(observed) - float(expected)) / abs(float(expected)):+.0%})"
    except (TypeError, ValueError):
        pass
    return text


def impact_text(impact: dict[str, Any] | None) -> str:
    if not impact:
        return ""
    currency = impact.get("currency", "")
    parts = []
    for key, value in impact.items():
        if key == "currency":
            continue
        label = key.replace("_", " ")
        parts.append(f"{label}: {_number(value)}{' ' + currency if currency and isinstance(value, (int, float)) else ''}")
    return "; ".join(parts)


def reason_text(reason: Any) -> str:
    if isinstance(reason, str):
        return reason
    if not isinstance(reason, dict):
        return str(reason)
    text = reason.get("text") or ""
    detector = reason.get("detector")
    if not text and reason.get("value") is not None:
        text = f"value {_number(reason.get('value'))}"
        if reason.get("threshold") is not None:
            text += f" beyond threshold {_number(reason.get('threshold'))}"
    return f"{detector}: {text}" if detector and text else (text or str(reason))


def contributor_text(item: Any) -> str:
    """Root-cause contributors come from the KPI layer as dicts; show the recognisable parts."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return str(item)
    if item.get("text"):
        return str(item["text"])
    where = item.get("label") or (f"{item['dimension']}={item.get('value')}" if "dimension" in item else "")
    if not where:
        where = dims_text({k: v for k, v in item.items() if isinstance(v, str)})
    numbers = []
    for key in ("contribution", "share", "delta", "change", "impact"):
        if isinstance(item.get(key), (int, float)):
            value = item[key]
            numbers.append(f"{key} {value:+.0%}" if key in ("contribution", "share") and abs(value) <= 1
                           else f"{key} {_number(value)}")
    return f"{where} ({', '.join(numbers)})" if numbers else where or str(item)


# ----------------------------------------------------------------------------- payload builders

def anomaly_url(base_url: str, anomaly_id: int) -> str:
    return f"{base_url.rstrip('/')}/anomalies/{anomaly_id}"


def anomaly_title(anomaly: Any) -> str:
    label = KIND_LABEL.get(anomaly.kind, anomaly.kind.capitalize())
    subject = anomaly.metric or anomaly.entity or anomaly.kind
    if anomaly.metric and anomaly.entity:
        subject = f"{anomaly.metric} of {anomaly.entity}"
    direction = {"up": " up", "down": " down"}.get(anomaly.direction or "", "")
    where = dims_text(anomaly.dimensions)
    return f"{label}: {subject}{direction}" + (f" ({where})" if where else "")


def anomaly_data(anomaly: Any, *, base_url: str) -> dict[str, Any]:
    detector = max(anomaly.detectors, key=anomaly.detectors.get) if anomaly.detectors else ""
    return {
        "id": anomaly.pk, "kind": anomaly.kind, "title": anomaly_title(anomaly),
        "occurred_at": _iso(anomaly.occurred_at), "detected_at": _iso(anomaly.detected_at),
        "metric": anomaly.metric, "dimensions": anomaly.dimensions, "entity": anomaly.entity,
        "event_ids": list(anomaly.event_ids or [])[:20], "score": anomaly.score, "severity": anomaly.severity,
        "direction": anomaly.direction, "expected": anomaly.expected, "observed": anomaly.observed,
        "impact": anomaly.impact, "reasons": anomaly.reasons, "detectors": anomaly.detectors,
        "top_detector": detector, "decision": anomaly.decision,
        "root_cause": list(anomaly.root_cause or [])[:MAX_ROOT_CAUSES], "fingerprint": anomaly.fingerprint,
        "url": anomaly_url(base_url, anomaly.pk),
    }


def alert_data(alert: Any) -> dict[str, Any]:
    return {
        "id": alert.pk, "fingerprint": alert.fingerprint, "status": alert.status, "title": alert.title,
        "kind": alert.kind, "metric": alert.metric, "entity": alert.entity, "severity": alert.severity,
        "peak_severity": alert.peak_severity, "count": alert.count, "opened_at": _iso(alert.opened_at),
        "last_seen_at": _iso(alert.last_seen_at), "resolved_at": _iso(alert.resolved_at),
        "last_anomaly_id": alert.last_anomaly_id,
    }


def alert_summary(alert: dict[str, Any], anomaly: dict[str, Any] | None, *, event: str, tz: ZoneInfo) -> dict[str, Any]:
    prefix = EVENT_LABEL.get(event, "")
    severity = alert["peak_severity"] if event != "alert.resolved" else alert["severity"]
    title = f"{prefix}: {alert['title']}" if prefix else alert["title"]
    fields: list[list[str]] = [["Severity", f"{severity} (peak {alert['peak_severity']})"]]
    text = ""
    if event == "alert.resolved":
        text = (f"No new anomaly since {_when(alert['last_seen_at'], tz)}; "
                f"{alert['count']} anomal{'y' if alert['count'] == 1 else 'ies'} in total.")
        fields.append(["Open from", f"{_when(alert['opened_at'], tz)} to {_when(alert['resolved_at'], tz)}"])
    reasons: list[str] = []
    root: list[str] = []
    url = ""
    if anomaly is not None:
        what = anomaly["kind"] + (f" · {anomaly['metric']}" if anomaly["metric"] else "")
        if anomaly.get("top_detector"):
            what += f" · {anomaly['top_detector']}"
        where = ", ".join(x for x in (dims_text(anomaly["dimensions"]), anomaly["entity"]) if x) or "all"
        fields += [["What", what], ["Where", where], ["When", _when(anomaly["occurred_at"], tz)]]
        change = change_text(anomaly["expected"], anomaly["observed"])
        if change:
            fields.append(["Expected vs observed", change])
        impact = impact_text(anomaly["impact"])
        if impact:
            fields.append(["Impact", impact])
        fields.append(["Score", f"{anomaly['score']:.2f}" + (f" · {anomaly['decision']}" if anomaly["decision"] else "")])
        reasons = [reason_text(r) for r in anomaly["reasons"] or []]
        root = [contributor_text(c) for c in anomaly["root_cause"] or []]
        url = anomaly["url"]
        if not text:
            text = change or anomaly["title"]
    if alert["count"] > 1 and event != "alert.resolved":
        fields.append(["Occurrences", f"{alert['count']} since {_when(alert['opened_at'], tz)}"])
    return {"title": title, "severity": severity, "text": text, "fields": fields, "reasons": reasons,
            "root_cause": root, "url": url}


def alert_payload(*, alert: Any, anomaly: Any | None, event: str, tenant_slug: str, tz: ZoneInfo,
                  base_url: str) -> dict[str, Any]:
    alert_json = alert_data(alert)
    anomaly_json = anomaly_data(anomaly, base_url=base_url) if anomaly is not None else None
    return {"type": event, "tenant": tenant_slug, "alert": alert_json, "anomaly": anomaly_json,
            "summary": alert_summary(alert_json, anomaly_json, event=event, tz=tz)}


DIGEST_REASONS = {"rate_limited": "rate limit reached for this channel",
                  "quiet_hours": "held during quiet hours", "digest": "digest"}


def digest_payload(*, items: list[dict[str, Any]], reason: str, tenant_slug: str) -> dict[str, Any]:
    """`items` are the payloads of the held notifications, oldest first."""
    severities = [i.get("summary", {}).get("severity", "low") for i in items]
    top = max(severities, key=lambda s: _RANK.get(s, 0)) if severities else "low"
    title = f"Digest: {len(items)} notification{'s' if len(items) != 1 else ''}"
    summary = {"title": title, "severity": top, "text": f"Folded together: {DIGEST_REASONS.get(reason, reason)}.",
               "fields": [], "reasons": [], "root_cause": [], "url": "",
               "items": [{k: i.get("summary", {}).get(k, "") for k in ("title", "severity", "text", "url")} for i in items]}
    return {"type": "digest", "tenant": tenant_slug, "reason": reason, "count": len(items), "items": items,
            "summary": summary}


def order_status_payload(*, change: dict[str, Any], tenant_slug: str, tz: ZoneInfo) -> dict[str, Any]:
    order = {k: change.get(k) for k in ("order_id", "status", "previous_status", "occurred_at", "event_id")}
    if isinstance(order["occurred_at"], datetime):
        order["occurred_at"] = order["occurred_at"].isoformat()
    previous = order["previous_status"] or "new"
    summary = {"title": f"Order {order['order_id']}: {previous} → {order['status']}", "severity": "low",
               "text": f"Status changed at {_when(order['occurred_at'], tz)}.",
               "fields": [["Order", str(order["order_id"])], ["Status", str(order["status"])],
                          ["Previous status", str(previous)]],
               "reasons": [], "root_cause": [], "url": ""}
    return {"type": "order.status_changed", "tenant": tenant_slug, "order": order, "summary": summary}


def test_payload(*, channel_name: str, tenant_slug: str) -> dict[str, Any]:
    summary = {"title": f"Test notification for '{channel_name}'", "severity": "low",
               "text": "If you can read this, PulseEcom can reach this channel.", "fields": [], "reasons": [],
               "root_cause": [], "url": ""}
    return {"type": "test", "tenant": tenant_slug, "summary": summary}


# ----------------------------------------------------------------------------- messages for people

@dataclass
class Message:
    title: str
    severity: str = "low"
    text: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    root_cause: list[str] = field(default_factory=list)
    url: str = ""
    items: list[Message] = field(default_factory=list)

    def subject(self) -> str:
        return f"{self.severity.upper()} {self.title}"[:200]

    def fallback_text(self) -> str:
        return f"[{self.severity}] {self.title}" + (f" – {self.text}" if self.text else "")


def message_from_payload(payload: dict[str, Any]) -> Message:
    summary = payload.get("summary") or {}
    return Message(
        title=str(summary.get("title", payload.get("type", "PulseEcom notification"))),
        severity=str(summary.get("severity", "low")),
        text=str(summary.get("text", "")),
        fields=[(str(a), str(b)) for a, b in summary.get("fields", [])],
        reasons=[str(r) for r in summary.get("reasons", [])],
        root_cause=[str(r) for r in summary.get("root_cause", [])],
        url=str(summary.get("url", "")),
        items=[Message(title=str(i.get("title", "")), severity=str(i.get("severity", "low")),
                       text=str(i.get("text", "")), url=str(i.get("url", ""))) for i in summary.get("items", [])],
    )
