"""The NATS sink against the real JetStream server on loopback (SERVICES.md).

With ``CI=true`` a missing server fails; elsewhere the tests skip with a one-line reason.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nats
import pyarrow.parquet as pq
import pytest

from strata.ingest.nats_sink import SinkConfig, run_sink
from strata.lake.storage import LocalStorage
from support.services import NATS_START, NATS_URL, service_missing

pytestmark = pytest.mark.timeout(120)


async def _publish(stream: str, subject_root: str, bodies: list[bytes]) -> None:
    nc = await nats.connect(servers=[NATS_URL], connect_timeout=2, max_reconnect_attempts=1)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{subject_root}.>"])
    for i, body in enumerate(bodies):
        await js.publish(f"{subject_root}.evt.{i % 3}", body)
    await nc.close()


async def _delete(stream: str) -> None:
    nc = await nats.connect(servers=[NATS_URL], connect_timeout=2, max_reconnect_attempts=1)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


@pytest.fixture
def stream() -> object:
    name = f"T{uuid.uuid4().hex[:12]}"
    root = f"strtest{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(asyncio.wait_for(_probe(), 5))
    except Exception as exc:
        service_missing("NATS on 127.0.0.1:4222", NATS_START, exc)
    yield name, root
    asyncio.run(_delete(name))


async def _probe() -> None:
    nc = await nats.connect(servers=[NATS_URL], connect_timeout=2, max_reconnect_attempts=1)
    await nc.jetstream().account_info()
    await nc.close()


def event(i: int, tenant: str = "acme") -> bytes:
    day = 1 + i % 3
    return json.dumps(
        {
            "event_id": f"ev-{i}",
            "type": "melmastoon.reservation.created.v1"
            if i % 2
            else "melmastoon.payment.captured.v1",
            "tenant_id": tenant if i % 5 else "globex",
            "occurred_at": f"2026-03-0{day}T12:00:00Z",
            "payload": {"n": i},
        }
    ).encode()


def landed(lake: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in sorted(lake.rglob("*.parquet")):
        rel = f.relative_to(lake).as_posix()
        t = pq.read_table(f)
        col = "event_id" if "event_id" in t.column_names else "reason"
        out[rel] = [str(v) for v in t.column(col).to_pylist()]
    return out


def test_lands_distinct_valid_events_and_dead_letters(
    stream: tuple[str, str], tmp_path: Path
) -> None:
    name, root = stream
    bodies = [event(i) for i in range(40)]
    bodies += [event(3), event(7), event(11)]  # redelivered duplicates by event_id
    bodies += [b"not json", json.dumps({"event_id": "x", "tenant_id": "acme"}).encode()]
    bodies += [json.dumps({**json.loads(event(99)), "tenant_id": "BAD!"}).encode()]
    asyncio.run(_publish(name, root, bodies))
    lake = tmp_path / "lake"
    cfg = SinkConfig(
        subject=f"{root}.>",
        durable="d1",
        stream=name,
        batch_max_records=7,
        batch_max_age_s=0.3,
        idle_exit_s=1.5,
    )
    stats = run_sink(cfg, LocalStorage(lake), tmp_path / "state")
    files = landed(lake)
    ids = [i for p, v in files.items() if "_deadletter" not in p for i in v]
    assert sorted(ids) == sorted(f"ev-{i}" for i in range(40))
    for path, values in files.items():
        if "_deadletter" in path:
            continue
        parts = path.split("/")
        assert parts[0] == "events"
        assert parts[1] in ("reservation_created_v1", "payment_captured_v1")
        for v in values:
            i = int(v.removeprefix("ev-"))
            assert parts[2] == ("tenant=acme" if i % 5 else "tenant=globex")
            assert parts[3:6] == ["year=2026", "month=03", f"day=0{1 + i % 3}"]
    dead = {p: v for p, v in files.items() if "_deadletter" in p}
    assert sum(len(v) for v in dead.values()) == 3
    assert any(p.startswith("events/_deadletter/tenant=acme/") for p in dead)
    assert any(p.startswith("events/_deadletter/unknown/") for p in dead)
    assert stats.dead_letters == 3
    assert stats.duplicates == 3
    # A second run finds everything acked: nothing new lands.
    again = run_sink(cfg, LocalStorage(lake), tmp_path / "state")
    assert again.received == 0
    assert landed(lake) == files


def _sink_proc(root: str, name: str, lake: Path, state: Path, idle: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from strata.cli.main import main; main()",
            "sink",
            "nats",
            "--subject",
            f"{root}.>",
            "--stream",
            name,
            "--durable",
            "crash",
            "--batch-max-records",
            "5",
            "--batch-max-age-s",
            "0.2",
            "--ack-wait-s",
            "1",
            "--idle-exit-s",
            idle,
            "--state-dir",
            str(state),
            "--lake",
            str(lake),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_stream_then_restart_lands_each_event_once(
    stream: tuple[str, str], tmp_path: Path
) -> None:
    name, root = stream
    total = 1500
    asyncio.run(_publish(name, root, [event(i) for i in range(total)]))
    lake, state = tmp_path / "lake", tmp_path / "state"
    proc = _sink_proc(root, name, lake, state, "30")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(lake.rglob("*.parquet"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    before = sum(len(v) for v in landed(lake).values())
    assert 0 < before < total, before
    proc = _sink_proc(root, name, lake, state, "3")  # idle > ack_wait: redeliveries arrive
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    ids = [i for v in landed(lake).values() for i in v]
    assert len(ids) == total
    assert sorted(ids) == sorted(f"ev-{i}" for i in range(total))


def test_graceful_sigterm_exits_zero(stream: tuple[str, str], tmp_path: Path) -> None:
    name, root = stream
    asyncio.run(_publish(name, root, [event(i) for i in range(20)]))
    proc = _sink_proc(root, name, tmp_path / "lake", tmp_path / "state", "60")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((tmp_path / "lake").rglob("*.parquet")):
        time.sleep(0.05)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out)["landed"] == 20
    assert sum(len(v) for v in landed(tmp_path / "lake").values()) == 20


def test_unreachable_server_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from strata.cli.main import main; main()",
            "sink",
            "nats",
            "--subject",
            "x.>",
            "--server",
            "nats://127.0.0.1:1",
            "--state-dir",
            str(tmp_path),
            "--lake",
            str(tmp_path / "lake"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "NATS is not reachable" in proc.stderr
