"""The app as a whole: health, metrics, OpenAPI, the catch-all 500, start-up checks."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from api_helpers import ENV, Keys, TestClient, bearer, query, serve

from strata.api.app import create_app
from strata.api.context import ServeContext
from strata.api.settings import load_serve_settings
from strata.catalog.errors import CatalogUnavailableError
from strata.core.errors import ConfigError


def context(client: TestClient) -> ServeContext:
    found = client.app.state.strata  # type: ignore[attr-defined]
    assert isinstance(found, ServeContext)
    return found


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_is_503_when_the_catalog_does_not_answer(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> str:
        raise CatalogUnavailableError("sqlite:///x", "database is locked")

    monkeypatch.setattr(context(client).catalog, "schema_revision", unavailable)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "catalog_unavailable"
    monkeypatch.undo()
    assert client.get("/health").status_code == 200


def test_metrics_count_requests_by_route_template(client: TestClient, keys: Keys) -> None:
    for _ in range(3):
        client.get("/health")
    client.get("/api/v1/analytics/etl/jobs/some-id", headers=bearer(keys.acme_viewer))
    client.get("/no/such/route")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    health = [line for line in lines if line.startswith("strata_http_requests_total{")]
    assert any('route="/health"' in line and 'status="200"' in line for line in health)
    assert any('route="/api/v1/analytics/etl/jobs/{job_id}"' in line for line in health)
    assert any('route="unmatched"' in line and 'status="404"' in line for line in health)
    assert "some-id" not in response.text
    assert "strata_http_request_duration_seconds_bucket" in response.text


def test_openapi_documents_the_routes(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/health",
        "/metrics",
        "/api/v1/analytics/queries:run",
        "/api/v1/analytics/projections",
        "/api/v1/analytics/projections/{key}:refresh",
        "/api/v1/analytics/etl/jobs/{job_id}",
    } <= set(paths)


def test_an_unexpected_error_is_a_bare_500_and_the_server_goes_on(
    project: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(project) as client:

        def broken() -> None:
            raise RuntimeError("secret detail of a bug")

        monkeypatch.setattr(context(client).exposed, "current", broken)
        response = query(client, keys.acme_viewer, "select 1 as x")
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal"
        assert "secret detail" not in response.text
        assert "RuntimeError" not in response.text
        monkeypatch.undo()
        assert query(client, keys.acme_viewer, "select 1 as x").json()["rows"] == [[1]]
        assert 'status="500"' in client.get("/metrics").text


def test_expose_silver_must_name_silver_models(project: Path) -> None:
    settings = load_serve_settings(project, ENV)
    for name, what in [("dim_workers", "a gold model"), ("nope", "no model")]:
        bad = dataclasses.replace(settings, expose_silver=(name,))
        with pytest.raises(ConfigError, match=f"expose_silver names '{name}', which is {what}"):
            create_app(project, environ=ENV, settings=bad)


def test_a_missing_jwt_secret_is_a_config_error(project: Path) -> None:
    with pytest.raises(ConfigError, match="STRATA_TEST_JWT_SECRET"):
        create_app(project, environ={})


def test_requests_after_shutdown_are_503(project: Path, keys: Keys) -> None:
    with serve(project) as client:
        pass
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def test_tenant_sql_stays_out_of_the_log(
    client: TestClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    # sqlglot warns, quoting the statement, when it falls back to parsing a Command.
    with caplog.at_level(logging.WARNING):
        response = query(client, keys.acme_viewer, "reset lock_configuration")
    assert response.status_code == 400
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")]
    assert "lock_configuration" not in caplog.text
