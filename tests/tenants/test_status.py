from __future__ import annotations

from rest_framework.test import APIClient


def test_status_reports_dependencies(tenant_a) -> None:  # type: ignore[no-untyped-def]
    response = tenant_a.client("ingest").get("/api/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == tenant_a.slug
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["database"]["schema"] == tenant_a.schema
    assert "depth" in body["checks"]["queue"] and "alive" in body["checks"]["workers"]


def test_prometheus_metrics(tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'pulse_dependency_up{dependency="redis"} 1.0' in text
    assert "pulse_queue_depth" in text


def test_openapi_schema_and_docs(tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/tenants" in paths and "/api/v1/status" in paths
    assert APIClient().get("/api/docs/").status_code == 200


def test_unknown_api_path_is_json_404(tenant_a) -> None:  # type: ignore[no-untyped-def]
    response = tenant_a.client().get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_tenant_endpoint_without_tenant_is_refused(platform_client, tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    response = platform_client.get("/api/v1/tenant")
    assert response.status_code == 403
