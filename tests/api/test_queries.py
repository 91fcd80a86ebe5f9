"""``POST /api/v1/analytics/queries:run``: formats, parameters, limits, explores, and
that one tenant's key never yields another tenant's rows."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pyarrow as pa
import pytest
from api_helpers import ENV, QUERY, SECRET, Keys, TestClient, bearer, query, serve

from strata.api.settings import load_serve_settings

ARROW = "application/vnd.apache.arrow.stream"
WORKERS = "select worker_id, job_title, is_active from gold.dim_workers order by worker_id"


def test_json_result(client: TestClient, keys: Keys) -> None:
    response = query(client, keys.acme_viewer, WORKERS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["columns"] == [
        {"name": "worker_id", "type": "VARCHAR"},
        {"name": "job_title", "type": "VARCHAR"},
        {"name": "is_active", "type": "BOOLEAN"},
    ]
    assert body["rows"] == [["1", "driver", True], ["2", "cook", False]]
    assert body["row_count"] == 2
    assert body["truncated"] is False
    assert body["elapsed_ms"] >= 0


def test_json_values_are_json_safe(client: TestClient, keys: Keys) -> None:
    sql = (
        "select hired_on, cast(hours as decimal(10, 2)) as hours, ingested_at"
        " from silver.profiles p join gold.fct_assignments f on f.worker_id = p.id"
        " where p.id = '1'"
    )
    row = query(client, keys.acme_viewer, sql).json()["rows"]
    assert row == [["2024-01-02", "4.00", "2024-05-01T12:00:00+00:00"]]


def test_csv_result(client: TestClient, keys: Keys) -> None:
    response = client.post(
        QUERY, json={"sql": WORKERS}, headers={**bearer(keys.acme_viewer), "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-strata-row-count"] == "2"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows == [
        ["worker_id", "job_title", "is_active"],
        ["1", "driver", "true"],
        ["2", "cook", "false"],
    ]


def test_arrow_result(client: TestClient, keys: Keys) -> None:
    response = client.post(
        QUERY, json={"sql": WORKERS}, headers={**bearer(keys.acme_viewer), "Accept": ARROW}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.schema.field("is_active").type == pa.bool_()
    assert table.to_pylist() == [
        {"worker_id": "1", "job_title": "driver", "is_active": True},
        {"worker_id": "2", "job_title": "cook", "is_active": False},
    ]


def test_accept_prefers_the_highest_quality(client: TestClient, keys: Keys) -> None:
    accept = f"application/json;q=0.5, {ARROW};q=0.9, text/html"
    response = client.post(
        QUERY, json={"sql": WORKERS}, headers={**bearer(keys.acme_viewer), "Accept": accept}
    )
    assert response.headers["content-type"] == ARROW


def test_parameters_are_bound(client: TestClient, keys: Keys) -> None:
    sql = "select count(*) as n from gold.fct_assignments where role = $role and hours >= $min"
    ok = query(client, keys.acme_viewer, sql, parameters={"role": "crew", "min": 4})
    assert ok.json()["rows"] == [[1]]
    # Pasted into the text this would match every row; bound, it matches none.
    hostile = query(client, keys.acme_viewer, sql, parameters={"role": "' or true --", "min": 0})
    assert hostile.json()["rows"] == [[0]]


def test_truncation(client: TestClient, keys: Keys) -> None:
    sql = "select assignment_id from gold.fct_assignments order by assignment_id"
    cut = query(client, keys.acme_viewer, sql, max_rows=2).json()
    assert cut["rows"] == [["a1"], ["a2"]]
    assert (cut["row_count"], cut["truncated"]) == (2, True)
    whole = query(client, keys.acme_viewer, sql, max_rows=3).json()
    assert (whole["row_count"], whole["truncated"]) == (3, False)


def test_max_rows_may_only_lower_the_setting(client: TestClient, keys: Keys) -> None:
    # The project allows 100 rows; asking for more gets 100 and the truncated flag.
    sql = "select * from " + ", ".join(f"gold.fct_assignments t{i}" for i in range(5))  # 3**5
    body = query(client, keys.acme_viewer, sql, max_rows=1_000_000).json()
    assert (body["row_count"], body["truncated"]) == (100, True)


def test_explore_joins_the_callers_rows_only(client: TestClient, keys: Keys) -> None:
    sql = "select * from explore.assignments order by assignment_id"
    body = query(client, keys.acme_viewer, sql).json()
    names = [c["name"] for c in body["columns"]]
    assert names == [
        "assignment_id",
        "company_id",
        "worker_id",
        "role",
        "status",
        "hours",
        "start_date",
        "job_title",
        "dim_workers__status",
        "hired_on",
        "is_active",
    ]
    rows = [dict(zip(names, row, strict=True)) for row in body["rows"]]
    assert [(r["assignment_id"], r["job_title"], r["dim_workers__status"]) for r in rows] == [
        ("a1", "driver", "active"),
        ("a2", "cook", "inactive"),
        ("a3", None, None),  # the worker is not in dim_workers
    ]
    globex = query(client, keys.globex_viewer, sql).json()
    assert [row[0] for row in globex["rows"]] == ["g-a1"]
    assert globex["rows"][0][names.index("job_title")] == SECRET


# -- second tenant --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "select * from gold.dim_workers",
        "select * from gold.fct_assignments",
        "select * from silver.profiles",
        "select * from explore.assignments",
        "select * from explore.workers",
        "select * from gold.dim_workers where company_id = 'globex'",
        "select * from gold.dim_workers where worker_id like 'g%'",
    ],
)
def test_acme_never_sees_globex_rows(client: TestClient, keys: Keys, sql: str) -> None:
    response = query(client, keys.acme_viewer, sql)
    assert response.status_code == 200
    assert "globex" not in response.text
    assert SECRET not in response.text


def test_counts_are_per_tenant(client: TestClient, keys: Keys) -> None:
    sql = (
        "select (select count(*) from gold.dim_workers) as workers,"
        " (select count(*) from gold.fct_assignments) as assignments,"
        " (select count(distinct company_id) from silver.profiles) as tenants"
    )
    assert query(client, keys.acme_viewer, sql).json()["rows"] == [[2, 3, 1]]
    assert query(client, keys.globex_viewer, sql).json()["rows"] == [[3, 1, 1]]


def test_naming_another_tenant_is_forbidden(client: TestClient, keys: Keys) -> None:
    response = query(client, keys.acme_admin, "select 1 as x", tenant="globex")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    own = query(client, keys.acme_admin, "select count(*) from gold.dim_workers", tenant="acme")
    assert own.json()["rows"] == [[2]]


def test_platform_admin_must_name_a_tenant(client: TestClient, keys: Keys) -> None:
    missing = query(client, keys.platform, "select count(*) from gold.dim_workers")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "tenant_required"
    named = query(client, keys.platform, "select count(*) from gold.dim_workers", tenant="globex")
    assert named.status_code == 200
    assert named.json()["rows"] == [[3]]


# -- limits ---------------------------------------------------------------------------------

# Three rows cross-joined 20 times: ~3.5e9 rows, far more than any timeout here lets run.
HEAVY = "select count(*) from " + ", ".join(f"gold.fct_assignments t{i}" for i in range(20))


def test_timeout(client: TestClient, keys: Keys) -> None:
    response = query(client, keys.acme_viewer, HEAVY, timeout_s=0.05)
    assert response.status_code == 408
    error = response.json()["error"]
    assert error["code"] == "query_timeout"
    assert "longer than 0.05 s" in error["message"]
    assert query(client, keys.acme_viewer, "select 1 as x").json()["rows"] == [[1]]


def test_scan_budget_and_memory_limit(project: Path, keys: Keys) -> None:
    settings = dataclasses.replace(
        load_serve_settings(project, ENV),
        scan_budget_bytes=1,
        memory_limit="32MB",
        timeout_s=60,
    )
    with serve(project, settings) as small:
        over = query(small, keys.acme_viewer, "select count(*) from explore.assignments")
        assert over.status_code == 400
        error = over.json()["error"]
        assert error["code"] == "scan_budget_exceeded"
        assert "gold.fct_assignments, gold.dim_workers" in error["message"]
        assert "scan budget of 1 bytes" in error["message"]
        # Reading no table reads nothing: within any budget.
        assert query(small, keys.acme_viewer, "select 1 as x").status_code == 200

    settings = dataclasses.replace(settings, scan_budget_bytes=2**30)
    hungry = "select string_agg(t0.role || t1.role, ',') as s from " + ", ".join(
        f"gold.fct_assignments t{i}" for i in range(16)
    )
    with serve(project, settings) as small:
        response = query(small, keys.acme_viewer, hungry)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "query_memory_limit"
        assert "memory_limit 32MB" in response.json()["error"]["message"]
        assert query(small, keys.acme_viewer, "select 1 as x").json()["rows"] == [[1]]


def test_refusals_and_rows_are_counted(client: TestClient, keys: Keys) -> None:
    query(client, keys.acme_viewer, "select * from nowhere")
    query(client, keys.acme_viewer, WORKERS)
    metrics = client.get("/metrics").text
    assert 'strata_query_refusals_total{kind="query_refused"}' in metrics
    rows = [line for line in metrics.splitlines() if line.startswith("strata_query_rows_returned")]
    assert rows
    assert float(rows[0].split()[-1]) >= 2
