"""Helpers of the API tests: a small project with two tenants and different data (built
once per module by ``conftest``), API keys for every role, JWTs and an in-process client;
for the HTTP collector, the collector app alone and bronze read back from the lake.

acme has 2 workers and 3 assignments, globex 3 workers and 1 assignment. Every globex row
carries ``SECRET`` (and globex ids start with ``g``), so finding either in an answer to
acme is a leak. The project has two metrics over the assignments explore (a count and a
ratio of sums) and one file dashboard (``METRICS``, ``DASHBOARD``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.exceptions import StarletteDeprecationWarning

from strata.api.app import create_app, create_collector_app
from strata.api.settings import ServeSettings
from strata.catalog.store import Catalog
from strata.lake.paths import BronzePartition, parse_bronze_path
from strata.transform.runner import run_project
from strata.transform.scaffold import init_project
from support.fixture_models import write_assignment_models

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 fork; the dev dependencies install httpx, which it
    # still supports. Narrow on purpose: any other warning stays an error.
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette\.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from fastapi.testclient import TestClient

SECRET = "zq-globex-secret"
JWT_ENV = "STRATA_TEST_JWT_SECRET"
JWT_SECRET = "test-secret-" + "x" * 32
ENV = {JWT_ENV: JWT_SECRET}
QUERY = "/api/v1/analytics/queries:run"
INGEST = "/api/v1/ingest"
PROJECTIONS = "/api/v1/analytics/projections"
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)

SERVE_TOML = f"""
[serve]
expose_silver = ["profiles"]
max_rows = 100

[serve.freshness]
"gold.fct_assignments" = "1h"

[serve.auth]
jwt_secret_env = "{JWT_ENV}"
audience = "strata"
"""


METRICS = {
    "assignment_count": """\
key: assignment_count
version: 1
type: simple
description: Assignments starting in the period.
owner: ops
explore: assignments
time_dimension: start_date
measure: {agg: count}
dimensions: [role, job_title, status]
""",
    # a ratio of sums: the lead's hours over all hours, never an average of row ratios
    "lead_hours_share": """\
key: lead_hours_share
version: 1
type: ratio
description: Share of the hours worked by leads.
explore: assignments
time_dimension: start_date
numerator: {agg: sum, expr: "case when role = 'lead' then hours else 0 end"}
denominator: {agg: sum, expr: hours}
grains: [day, month, year]
dimensions: [job_title, role]
freshness_slo: 2h
""",
}
DASHBOARD = """\
title: Overview
description: Assignments at a glance.
widgets:
  - title: Assignments by month
    type: timeseries
    metric: assignment_count
    grain: month
    range: 2024-01-01..2024-06-30
  - title: Assignments
    type: kpi
    metric: assignment_count
    grain: day
    range: 2024-03-01..2024-04-30
  - title: Lead share by title
    type: breakdown
    metric: lead_hours_share
    grain: month
    group_by: [job_title]
    range: 2024-01-01..2024-06-30
"""


def _profile(id_: str, company: str, title: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": company,
        "rut": "1-9",
        "first_name": f"Name{id_}",
        "last_name": "Doe",
        "email": f"w{id_}@example.com",
        "phone": None,
        "job_title": title,
        "status": status,
        "hired_on": "2024-01-02",
        "created_at": "2024-01-02 10:00:00",
        "updated_at": "2024-01-02 10:00:00",
        "deleted_at": None,
    }


def _assignment(
    id_: str, company: str, worker: str, role: str, hours: float, day: str = "2024-03-01"
) -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": company,
        "profile_id": worker,
        "role": role,
        "status": "open",
        "hours": hours,
        "start_date": day,
        "updated_at": "2024-03-01 08:00:00",
        "deleted_at": None,
    }


def _bronze(lake: Path, table: str, tenant: str, rows: list[dict[str, Any]]) -> None:
    rel = BronzePartition("wfm", table, tenant, T0.date()).file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{**r, "ingested_at": T0} for r in rows]), lake / rel)


def build_project(base: Path, serve_toml: str = SERVE_TOML, select: str | None = None) -> Path:
    """The scaffolded example plus assignments, an explore and a gold model that fails;
    ``select`` builds only those models."""
    root = init_project(base / "proj", "proj")
    lake = root / "lake"
    acme_workers = [_profile("1", "acme", "driver"), _profile("2", "acme", "cook", "inactive")]
    _bronze(lake, "profiles", "acme", acme_workers)
    _bronze(lake, "profiles", "globex", [_profile(f"g{i}", "globex", SECRET) for i in range(3)])
    _bronze(
        lake,
        "assignments",
        "acme",
        [
            _assignment("a1", "acme", "1", "lead", 4.0),
            _assignment("a2", "acme", "2", "crew", 3.5, "2024-03-15"),
            # no such worker: NULLs in the explore
            _assignment("a3", "acme", "9", "crew", 8.0, "2024-04-15"),
        ],
    )
    _bronze(lake, "assignments", "globex", [_assignment("g-a1", "globex", "g0", SECRET, 99.0)])
    models = root / "models"
    write_assignment_models(root)
    for name, text in METRICS.items():
        (root / "metrics" / f"{name}.yml").write_text(text)
    (root / "dashboards" / "overview.yml").write_text(DASHBOARD)
    # Parses and lints, fails when built: never built, and a refresh job that fails.
    broken = "select no_such_column, company_id from silver.profiles\n"
    (models / "gold" / "broken.sql").write_text(broken)
    (models / "gold" / "broken.yml").write_text("materialized: table\n")
    with (root / "strata.toml").open("a") as toml:
        toml.write(serve_toml)
    summary = run_project(root, select=select)
    assert [r.name for r in summary.failed] == ([] if select else ["broken"])
    return root


def catalog_url(root: Path) -> str:
    return f"sqlite:///{root / '.strata' / 'catalog.db'}"


@dataclass(frozen=True)
class Keys:
    acme_admin: str
    acme_viewer: str
    acme_service: str
    globex_admin: str
    globex_viewer: str
    platform: str
    revoked: str
    events_ingest: str  # collector key of namespace events; each record names its tenant
    events_acme_ingest: str  # collector key of namespace events, tenant acme


def create_keys(root: Path) -> Keys:
    with Catalog.open(catalog_url(root)) as catalog:
        tokens = {
            name: catalog.create_key(tenant, role, namespace=namespace)[1]
            for name, tenant, role, namespace in [
                ("acme_admin", "acme", "tenant_admin", None),
                ("acme_viewer", "acme", "viewer", None),
                ("acme_service", "acme", "service", None),
                ("globex_admin", "globex", "tenant_admin", None),
                ("globex_viewer", "globex", "viewer", None),
                ("platform", None, "platform_admin", None),
                ("revoked", "acme", "viewer", None),
                ("events_ingest", None, "ingest", "events"),
                ("events_acme_ingest", "acme", "ingest", "events"),
            ]
        }
        key_id = tokens["revoked"].split("_")[1]
        assert catalog.revoke_key(key_id)
    return Keys(**tokens)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_jwt(claims: Mapping[str, Any], secret: str = JWT_SECRET, **headers: Any) -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    payload = {"sub": "user-1", "aud": "strata", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


@contextmanager
def serve(
    root: Path, settings: ServeSettings | None = None, environ: Mapping[str, str] = ENV
) -> Iterator[TestClient]:
    """An app over ``root``, started (lifespan run) for the block."""
    with TestClient(create_app(root, environ=environ, settings=settings)) as client:
        yield client


@contextmanager
def serve_collector(
    root: Path, settings: ServeSettings | None = None, environ: Mapping[str, str] = ENV
) -> Iterator[TestClient]:
    """The collector alone over ``root`` (``strata serve --collector-only``), started for
    the block; leaving it closes its ingest clients, which flushes their records to bronze."""
    with TestClient(create_collector_app(root, environ=environ, settings=settings)) as client:
        yield client


def ingest(
    client: TestClient,
    token: str,
    records: Any,
    path: str = "events/clicks",
    **params: Any,
) -> Any:
    """POST records to the collector as a JSON array; the response (any status)."""
    return client.post(f"{INGEST}/{path}", json=records, params=params, headers=bearer(token))


def bronze_rows(lake: Path, namespace: str, table: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of a bronze table by tenant partition, read from its Parquet files."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for file in sorted((lake / namespace / table).rglob("*.parquet")):
        partition = parse_bronze_path(file.relative_to(lake).as_posix()).partition
        assert (partition.namespace, partition.table) == (namespace, table)
        rows.setdefault(partition.tenant, []).extend(pq.read_table(file).to_pylist())
    return rows


def bronze_files(lake: Path, namespace: str) -> list[Path]:
    return sorted((lake / namespace).rglob("*.parquet"))


def query(client: TestClient, token: str, sql: str, **fields: Any) -> Any:
    """POST a query; the response (any status)."""
    return client.post(QUERY, json={"sql": sql, **fields}, headers=bearer(token))


def job_path(job_id: str) -> str:
    return f"/api/v1/analytics/etl/jobs/{job_id}"


def refresh(client: TestClient, token: str, key: str) -> Any:
    return client.post(f"{PROJECTIONS}/{key}:refresh", headers=bearer(token))


def wait_for_job(client: TestClient, token: str, job_id: str, deadline_s: float = 120) -> Any:
    """Poll the job until it is no longer running; its last status body. The deadline only
    stops a hung test, it asserts nothing about speed."""
    give_up = time.monotonic() + deadline_s
    while True:
        body = client.get(job_path(job_id), headers=bearer(token)).json()
        if body.get("status") != "running" or time.monotonic() > give_up:
            return body
        time.sleep(0.05)
