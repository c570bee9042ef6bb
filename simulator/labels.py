"""Ground truth records: one `Label` per injected incident or fraud pattern, one
`EventLabel` per fraudulent event (the chargeback feed), and a per-event truth map."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

LabelKind = Literal["kpi", "fraud", "stock"]


def parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"naive timestamp {value!r}: labels and anomalies need an offset")
    return dt


@dataclass(frozen=True)
class Label:
    """An injected incident.

    `metric` is the KPI that shows it most directly; `related_metrics` are other KPIs
    it moves, which a detector may legitimately report instead. `event_ids` lists the
    fraudulent payment (or return) events for event-level fraud; `known_at` is when
    the truth becomes available to the merchant (e.g. a chargeback 7 days later).
    """

    incident_id: str
    type: str
    kind: LabelKind
    start: datetime
    end: datetime
    metric: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)
    entity: str | None = None
    event_ids: tuple[str, ...] = ()
    known_at: datetime | None = None
    related_metrics: tuple[str, ...] = ()
    direction: Literal["up", "down"] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[str, ...]:
        return ((self.metric,) if self.metric else ()) + self.related_metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "type": self.type,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "metric": self.metric,
            "related_metrics": list(self.related_metrics),
            "dimensions": dict(sorted(self.dimensions.items())),
            "entity": self.entity,
            "direction": self.direction,
            "event_ids": list(self.event_ids),
            "known_at": self.known_at.isoformat() if self.known_at else None,
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Label:
        return cls(
            incident_id=d["incident_id"], type=d["type"], kind=d["kind"],
            start=parse_time(d["start"]), end=parse_time(d["end"]),
            metric=d.get("metric"), dimensions=dict(d.get("dimensions") or {}),
            entity=d.get("entity"), event_ids=tuple(d.get("event_ids") or ()),
            known_at=parse_time(d["known_at"]) if d.get("known_at") else None,
            related_metrics=tuple(d.get("related_metrics") or ()),
            direction=d.get("direction"), attributes=dict(d.get("attributes") or {}),
        )


@dataclass(frozen=True)
class EventLabel:
    """One row of a delayed label feed, shaped for `POST /api/v1/labels`."""

    event_id: str
    label: Literal["fraud", "legit"]
    known_at: datetime
    incident_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "label": self.label,
                "known_at": self.known_at.isoformat(), "incident_id": self.incident_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EventLabel:
        return cls(event_id=d["event_id"], label=d["label"], known_at=parse_time(d["known_at"]),
                   incident_id=d.get("incident_id"))


@dataclass
class LabelSet:
    """Everything the evaluation needs besides the anomalies.

    `truth` maps every payment and return event id to "fraud" or "legit": the
    population over which event-level precision and false-alarm rates are computed.
    """

    labels: list[Label]
    event_labels: list[EventLabel]
    truth: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)

    def labels_known_by(self, when: datetime) -> list[EventLabel]:
        """The chargeback feed as a merchant would have it at `when` (no look-ahead)."""
        return [e for e in self.event_labels if e.known_at <= when]
