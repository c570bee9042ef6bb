"""Prometheus metrics. Counters live in the process that counts; platform gauges are read at scrape time."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS_ACCEPTED = Counter("pulse_events_accepted_total", "Events accepted and stored", ["tenant"])
EVENTS_REJECTED = Counter("pulse_events_rejected_total", "Events quarantined", ["tenant"])
ANOMALIES_CREATED = Counter("pulse_anomalies_total", "Anomalies recorded", ["tenant", "kind"])
REQUEST_LATENCY = Histogram("pulse_request_seconds", "API latency by endpoint", ["endpoint"],
                            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class PlatformCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from pulse.lib.health import run_checks

        checks = run_checks()
        up = GaugeMetricFamily("pulse_dependency_up", "1 when the dependency answers", labels=["dependency"])
        for name, result in checks.items():
            up.add_metric([name], 1.0 if result.get("ok") else 0.0)
        yield up
        if "queue" in checks and "depth" in checks["queue"]:
            yield GaugeMetricFamily("pulse_queue_depth", "Celery messages waiting", value=checks["queue"]["depth"])
        if "workers" in checks and "alive" in checks["workers"]:
            yield GaugeMetricFamily("pulse_workers_alive", "Workers with a fresh heartbeat",
                                    value=checks["workers"]["alive"])


_collector_registered = False


def metrics_view(request: HttpRequest) -> HttpResponse:
    global _collector_registered
    token = settings.PULSE_METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    if not _collector_registered:
        REGISTRY.register(PlatformCollector())
        _collector_registered = True
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
