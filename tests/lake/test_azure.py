"""``abfs://`` lakes against Azurite, the Azure Storage emulator, on loopback.

Azurite comes from the npm registry; ``.ci/run`` installs it under ``.ci/node_modules``.
In CI a missing emulator fails these tests; elsewhere they skip, saying how to get it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from strata.ingest import IngestClient, IngestConfig
from strata.lake.storage import FsspecStorage, open_lake, storage_from_spec

ROOT = Path(__file__).resolve().parents[2]
# Azurite's documented development account: public, loopback only.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str | None:
    local = ROOT / ".ci" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = azurite_binary()
    if binary is None:
        reason = "Azurite not installed: npm install --prefix .ci azurite (bash .ci/run does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("azurite")
    proc, port = _start_azurite(binary, workdir)
    try:
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(conn).create_container("lake")
        yield conn
    finally:
        proc.kill()  # a throwaway emulator: its data dir is a temp dir, nothing to keep
        proc.wait(10)


def _start_azurite(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Azurite on a free port, listening; a start that fails (a port taken between choosing
    and binding it, a slow first start) is retried, and the last failure says why."""
    problem = ""
    for attempt in range(3):
        port = free_port()
        log = workdir / f"azurite-{attempt}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    binary,
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--location",
                    str(workdir / f"data-{attempt}"),
                    "--skipApiVersionCheck",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc, port
            except OSError:
                time.sleep(0.1)
        proc.kill()
        proc.wait(10)
        output = log.read_text(errors="replace").strip().splitlines()[-5:]
        problem = f"exit code {proc.returncode}: {' | '.join(output) or 'no output'}"
    pytest.fail(f"Azurite did not start in 3 tries ({problem})")


def test_abfs_lake_writes_reads_and_lists(connection_string: str) -> None:
    storage = open_lake("abfs://lake/basic", {"connection_string": connection_string})
    assert isinstance(storage, FsspecStorage)
    storage.write_atomic("wfm/a/one.parquet", b"first")
    storage.write_atomic("wfm/a/one.parquet", b"second")  # a retried write replaces
    storage.write_atomic("wfm/b/two.parquet", b"2")
    assert storage.read_bytes("wfm/a/one.parquet") == b"second"
    assert storage.exists("wfm/b/two.parquet")
    assert not storage.exists("wfm/c/none.parquet")
    assert [f.path for f in storage.list_files("wfm", ".parquet")] == [
        "wfm/a/one.parquet",
        "wfm/b/two.parquet",
    ]
    rebuilt = storage_from_spec(storage.spec())
    assert rebuilt.read_bytes("wfm/b/two.parquet") == b"2"


def test_ingest_client_lands_records_in_an_abfs_lake(
    connection_string: str, tmp_path: Path
) -> None:
    options = {"connection_string": connection_string}
    with IngestClient(
        "abfs://lake/bronze",
        storage_options=options,
        namespace="wfm",
        source_service="wfm-service",
        journal_dir=tmp_path / "journal",
        config=IngestConfig(batch_max_age_s=0.1),
    ) as client:
        for i in range(500):
            client.ingest("profiles", "acme" if i % 2 else "globex", {"id": i, "name": f"w{i}"})
        client.flush(timeout=60)
    storage = open_lake("abfs://lake/bronze", options)
    files = [f.path for f in storage.list_files("wfm/profiles", ".parquet")]
    assert len(files) == 2  # one batch per tenant
    ids = []
    for path in files:
        assert "/tenant=acme/" in path or "/tenant=globex/" in path
        with storage.open_input(path) as stream:
            ids += pq.read_table(stream).column("id").to_pylist()
    assert sorted(ids) == list(range(500))
