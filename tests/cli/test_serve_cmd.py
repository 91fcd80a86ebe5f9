"""``strata serve``: a real server in a subprocess answering over HTTP, and start-up errors
reported in one line with exit code 2."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from strata.catalog.store import Catalog
from strata.cli import app
from strata.lake.paths import BronzePartition
from strata.transform.runner import run_project
from strata.transform.scaffold import init_project

STRATA = Path(sys.executable).parent / "strata"
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


PROFILE_COLUMNS = (
    *("id", "company_id", "rut", "first_name", "last_name", "email", "phone", "job_title"),
    *("status", "hired_on", "created_at", "updated_at", "deleted_at"),
)


def write_profiles(lake: Path, tenant: str, ids: list[str]) -> None:
    data: dict[str, list[object]] = {c: [None] * len(ids) for c in PROFILE_COLUMNS}
    data.update(id=list(ids), company_id=[tenant] * len(ids), status=["active"] * len(ids))
    table = pa.table({c: pa.array(v, pa.string()) for c, v in data.items()})
    table = table.append_column("ingested_at", pa.array([T0] * len(ids), pa.timestamp("us", "UTC")))
    rel = BronzePartition("wfm", "profiles", tenant, T0.date()).file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, lake / rel)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_answers_queries_over_http(tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj", "proj")
    write_profiles(root / "lake", "acme", ["1", "2"])
    write_profiles(root / "lake", "globex", ["3"])
    assert run_project(root).ok
    with Catalog.open(f"sqlite:///{root / '.strata' / 'catalog.db'}") as catalog:
        _, token = catalog.create_key("acme", "viewer")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [STRATA, "serve", "--project", str(root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        give_up = time.monotonic() + 60  # only stops a hung test; nothing asserts speed
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < give_up, "the server did not come up"
            time.sleep(0.1)
        response = httpx.post(
            f"{base}/api/v1/analytics/queries:run",
            json={"sql": "select worker_id from gold.dim_workers order by worker_id"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == [["1"], ["2"]]
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    # uvicorn shuts down cleanly on SIGTERM, then ends by the signal it caught.
    assert server.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert f"on http://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def invoke(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.output


def test_serve_without_a_project_is_an_error(tmp_path: Path) -> None:
    code, out = invoke("serve", "--project", str(tmp_path))
    assert code == 2
    assert out.startswith("error: strata.toml")
    assert "Traceback" not in out


def test_serve_with_a_bad_serve_table_is_an_error(tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj", "proj")
    with (root / "strata.toml").open("a") as toml:
        toml.write('\n[serve]\nmax_rows = "many"\n')
    code, out = invoke("serve", "--project", str(root))
    assert code == 2
    assert "serve.max_rows must be a positive integer" in out


def test_serve_with_an_unreachable_catalog_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = init_project(tmp_path / "proj", "proj")
    monkeypatch.setenv("STRATA_CATALOG_URL", "postgresql://strata@127.0.0.1:1/strata")
    code, out = invoke("serve", "--project", str(root))
    assert code == 2
    assert "is unavailable" in out
