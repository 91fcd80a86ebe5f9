"""The FastAPI example service, run in-process: its records reach bronze per tenant."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 fork; the dev dependencies install httpx, which it
    # still supports. Narrow on purpose: any other warning stays an error.
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette\.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from fastapi.testclient import TestClient

from strata.lake.paths import parse_bronze_path

APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service" / "app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strata_example_fastapi_service", APP_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bronze_rows(lake: Path, tenant: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for file in sorted((lake / "wfm" / "profiles" / f"tenant={tenant}").rglob("*.parquet")):
        partition = parse_bronze_path(file.relative_to(lake).as_posix()).partition
        assert (partition.namespace, partition.table, partition.tenant) == (
            "wfm",
            "profiles",
            tenant,
        )
        rows.extend(pq.read_table(file).to_pylist())
    return sorted(rows, key=lambda r: r["id"])


def test_workers_land_in_bronze_under_their_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    monkeypatch.setenv("STRATA_LAKE", str(lake))
    monkeypatch.setenv("STRATA_JOURNAL_DIR", str(tmp_path / "journal"))
    example = load_example()

    with TestClient(example.app) as http:
        for worker_id, name in [(1, "Ana"), (2, "Bo")]:
            response = http.post(
                "/companies/acme/workers", json={"id": worker_id, "name": name, "role": "picker"}
            )
            assert response.status_code == 201
            assert response.json() == {"id": worker_id, "name": name, "role": "picker"}
        response = http.post(
            "/companies/globex/workers", json={"id": 1, "name": "Cy", "role": "driver"}
        )
        assert response.status_code == 201
        response = http.post(
            "/companies/globex/workers/import",
            json=[{"id": n, "name": f"w{n}", "role": "driver"} for n in range(2, 102)],
        )
        assert response.status_code == 202
        assert response.json() == {"accepted": 100}
        assert len(example.app.state.db) == 103
    # Leaving the block ran the lifespan's shutdown: the client flushed and closed.

    assert (tmp_path / "journal" / "wfm" / "wfm-service" / "slot-0").is_dir()
    acme = bronze_rows(lake, "acme")
    assert [(r["company_id"], r["id"], r["name"]) for r in acme] == [
        ("acme", 1, "Ana"),
        ("acme", 2, "Bo"),
    ]
    globex = bronze_rows(lake, "globex")
    assert [r["id"] for r in globex] == list(range(1, 102))
    assert {r["company_id"] for r in globex} == {"globex"}  # nothing of acme leaks in
    assert {r["source_service"] for r in acme + globex} == {"wfm-service"}
    assert all(r["ingested_at"] is not None for r in acme + globex)
    assert not (lake / "wfm" / "_quarantine").exists()
