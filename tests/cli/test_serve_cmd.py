"""``strata serve``: a real server in a subprocess answering over HTTP, and start-up errors
reported in one line with exit code 2; ``--collector-only``: records it accepted survive
the server being killed before they reach the lake."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from strata.api.app import create_collector_app
from strata.catalog.store import Catalog
from strata.cli import app
from strata.ingest.client import IngestClient
from strata.lake.paths import BronzePartition, parse_bronze_path
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


def wait_until_up(server: subprocess.Popen[str], base: str, log: Path | None = None) -> None:
    give_up = time.monotonic() + 60  # only stops a hung test; nothing asserts speed
    while True:
        if server.poll() is not None:
            detail = log.read_text() if log is not None else server.communicate()[1]
            raise AssertionError(f"the server exited: {detail}")
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < give_up, "the server did not come up"
        time.sleep(0.1)


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
        wait_until_up(server, base)
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


# -- strata serve --collector-only ----------------------------------------------------------

# Batches wait an hour: until the server is stopped, accepted records are only in the
# journal. Small journal segments: the records span several.
HOLD_BATCHES = {"STRATA_INGEST_BATCH_MAX_AGE_S": "3600", "STRATA_INGEST_SEGMENT_BYTES": "1048576"}
COLLECTOR_TOML = "\n[serve]\ncollector_max_body_kb = 64\n"


class Collector:
    """``strata serve --collector-only`` in a subprocess, its log in a file."""

    def __init__(self, root: Path, log: TextIO, env: Mapping[str, str]) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = Path(log.name)
        self.server = subprocess.Popen(
            [STRATA, "serve", "--collector-only", "--project", str(root), "--port", str(port)],
            stdout=log,
            stderr=log,
            text=True,
            env={**os.environ, **env},
        )
        try:
            wait_until_up(self.server, self.base, self.log_path)
        except BaseException:
            self.kill()
            raise

    def post(self, token: str, records: list[dict[str, Any]]) -> httpx.Response:
        return httpx.post(
            f"{self.base}/api/v1/ingest/events/clicks",
            json=records,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def kill(self) -> None:
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(timeout=30)

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=60)


def collector_project(tmp_path: Path) -> tuple[Path, str]:
    """A project never built, with the collector's body limit at 64 KiB, and an ingest key."""
    root = init_project(tmp_path / "proj", "proj")
    with (root / "strata.toml").open("a") as toml:
        toml.write(COLLECTOR_TOML)
    with Catalog.open(f"sqlite:///{root / '.strata' / 'catalog.db'}") as catalog:
        _, token = catalog.create_key(None, "ingest", namespace="events")
    return root, token


def batches(count: int, size: int, start: int = 0) -> Iterator[list[dict[str, Any]]]:
    for first in range(start, start + count * size, size):
        yield [
            {"tenant_id": ("acme", "globex")[n % 2], "id": n, "pad": "x" * 400}
            for n in range(first, first + size)
        ]


def landed_ids(lake: Path) -> list[int]:
    """The id of every row in bronze events.clicks (duplicates kept)."""
    found: list[int] = []
    for file in (lake / "events" / "clicks").rglob("*.parquet"):
        partition = parse_bronze_path(file.relative_to(lake).as_posix()).partition
        rows = pq.read_table(file).to_pylist()
        assert {row["tenant_id"] for row in rows} == {partition.tenant}
        assert {row["source_service"] for row in rows} == {"collector"}
        found.extend(row["id"] for row in rows)
    return sorted(found)


def parquet_files(lake: Path) -> list[Path]:
    return sorted(lake.rglob("*.parquet"))


@pytest.mark.slow
def test_accepted_records_survive_a_killed_collector(tmp_path: Path) -> None:
    root, token = collector_project(tmp_path)
    with (tmp_path / "server.log").open("w") as log:
        collector = Collector(root, log, HOLD_BATCHES)
        try:
            # Only the collector: no query routes.
            query = httpx.post(f"{collector.base}/api/v1/analytics/queries:run", json={})
            assert query.status_code == 404
            for records in batches(count=10, size=40):  # ~170 KB over several segments
                response = collector.post(token, records)
                assert response.status_code == 200, response.text
                assert response.json()["accepted"] == 40
            assert parquet_files(root / "lake") == []
        finally:
            collector.kill()  # before the writer committed anything

    # Every 200 came while the records were only in the journal. The killed server's writer
    # process may still commit what it had read; a client on the same journal lands the
    # rest: each accepted record lands exactly once.
    client = IngestClient(
        root / "lake",
        namespace="events",
        source_service="collector",
        journal_dir=root / ".strata" / "collector-journal",
    )
    client.close()
    assert landed_ids(root / "lake") == list(range(400))


@pytest.mark.slow
def test_a_restarted_collector_lands_what_the_killed_one_accepted(tmp_path: Path) -> None:
    root, token = collector_project(tmp_path)
    with (tmp_path / "killed.log").open("w") as log:
        first = Collector(root, log, HOLD_BATCHES)
        try:
            for records in batches(count=3, size=20):
                assert first.post(token, records).status_code == 200
        finally:
            first.kill()
    # Its own log: the killed server's orphaned writer process may still write to the other.
    with (tmp_path / "restarted.log").open("w") as log:
        second = Collector(root, log, HOLD_BATCHES)
        try:
            for records in batches(count=2, size=20, start=60):
                assert second.post(token, records).status_code == 200

            def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts bytes
                for records in batches(count=20, size=10, start=1000):
                    yield b"".join(orjson.dumps(r) + b"\n" for r in records)

            too_big = httpx.post(
                f"{second.base}/api/v1/ingest/events/clicks",
                content=chunks(),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/x-ndjson",
                },
                timeout=30,
            )
            assert too_big.status_code == 413, too_big.text
            assert too_big.json()["error"]["code"] == "body_too_large"
            assert "65536 bytes" in too_big.json()["error"]["message"]
        finally:
            second.stop()  # a clean stop closes the ingest clients: everything lands
    assert second.server.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in (tmp_path / "restarted.log").read_text()
    assert landed_ids(root / "lake") == list(range(100))


def test_collector_only_with_demo_keys_is_an_error(tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj", "proj")
    code, out = invoke("serve", "--collector-only", "--demo-keys", "--project", str(root))
    assert code == 2
    assert "--collector-only leaves out" in out


def test_collector_only_does_not_need_valid_models(tmp_path: Path) -> None:
    """Only strata.toml matters: a broken model stops `strata serve`, not the collector."""
    root = init_project(tmp_path / "proj", "proj")
    (root / "models" / "gold" / "broken.sql").write_text("select 1 as x\n")
    (root / "models" / "gold" / "broken.yml").write_text("materialized: [\n")
    code, out = invoke("serve", "--project", str(root))
    assert code == 2
    assert "broken.yml" in out
    create_collector_app(root)  # raises if it read more than strata.toml
