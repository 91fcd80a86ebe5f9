"""Lake storage backends: local folders, fsspec URLs (memory://, S3 via a local moto server),
the fault-injecting wrapper, and rebuilding any of them from a spec in another process."""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer

from strata.core.errors import ConfigError, Terminal, Transient
from strata.lake.faults import FaultInjectingStorage
from strata.lake.storage import (
    FsspecStorage,
    LakeStorage,
    LakeUnavailableError,
    LocalStorage,
    StoredFile,
    open_lake,
    storage_from_spec,
)

PARTITION = "wfm/profiles/tenant=acme/year=2026/month=01/day=31"
ESCAPING_PATHS = ["..", "../x", "a/../../x", "a/..", "/x", "/etc/passwd", "a/../b"]


def every_entry(root: Path) -> list[str]:
    """Every file under ``root``, dot files and temp files included, '/'-separated."""
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


def rebuilt(storage: LakeStorage) -> LakeStorage:
    """What the writer process gets: the spec goes through JSON on its command line."""
    return storage_from_spec(orjson.loads(orjson.dumps(storage.spec())))


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake")


# -- LocalStorage: atomic writes -----------------------------------------------------------


@pytest.mark.parametrize("fsync", [True, False])
def test_write_atomic_creates_parent_dirs_and_leaves_no_temp_files(
    tmp_path: Path, fsync: bool
) -> None:
    lake = LocalStorage(tmp_path / "not" / "yet" / "there", fsync=fsync)
    lake.write_atomic(f"{PARTITION}/a.parquet", b"payload")
    lake.write_atomic(f"{PARTITION}/b.parquet", memoryview(b"view"))

    assert every_entry(lake.root) == [f"{PARTITION}/a.parquet", f"{PARTITION}/b.parquet"]
    assert (lake.root / PARTITION / "a.parquet").read_bytes() == b"payload"
    assert lake.read_bytes(f"{PARTITION}/b.parquet") == b"view"


def test_rewriting_a_path_leaves_one_file_with_the_new_content(lake: LocalStorage) -> None:
    path = f"{PARTITION}/batch.parquet"
    lake.write_atomic(path, b"first attempt, longer than the retry")
    lake.write_atomic(path, b"retry")
    lake.write_atomic(path, b"retry")

    assert every_entry(lake.root) == [path]
    assert lake.read_bytes(path) == b"retry"


def test_empty_and_large_payloads_are_written_whole(lake: LocalStorage) -> None:
    big = os.urandom(8 * 1024 * 1024 + 3)
    lake.write_atomic("big.bin", big)
    lake.write_atomic("empty.bin", b"")
    assert lake.read_bytes("big.bin") == big
    assert lake.read_bytes("empty.bin") == b""
    assert every_entry(lake.root) == ["big.bin", "empty.bin"]


@pytest.mark.parametrize("shared_instance", [True, False])
def test_concurrent_writers_of_one_path_end_with_one_complete_file(
    tmp_path: Path, shared_instance: bool
) -> None:
    path = f"{PARTITION}/batch.parquet"
    writers = 8
    payloads = [bytes([65 + i]) * (256 * 1024 + i) for i in range(writers)]
    shared = LocalStorage(tmp_path / "lake", fsync=False)
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        storage = shared if shared_instance else LocalStorage(tmp_path / "lake", fsync=False)
        barrier.wait()
        try:
            for _ in range(5):
                storage.write_atomic(path, payloads[i])
        except BaseException as exc:  # surfaced below; a thread swallows it otherwise
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert every_entry(shared.root) == [path]
    assert shared.read_bytes(path) in payloads  # one writer's bytes, never a mix or a prefix


def test_concurrent_writers_into_one_new_partition_all_land(lake: LocalStorage) -> None:
    writers = 16
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            lake.write_atomic(f"{PARTITION}/{i:02d}.parquet", str(i).encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert every_entry(lake.root) == [f"{PARTITION}/{i:02d}.parquet" for i in range(writers)]


# -- LocalStorage: paths that leave the lake ----------------------------------------------


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_paths_escaping_the_root_are_config_errors(
    tmp_path: Path, lake: LocalStorage, path: str
) -> None:
    with pytest.raises(ConfigError, match="may not leave the lake"):
        lake.write_atomic(path, b"x")
    with pytest.raises(ConfigError):
        lake.read_bytes(path)
    with pytest.raises(ConfigError):
        lake.open_input(path)
    with pytest.raises(ConfigError):
        lake.exists(path)
    with pytest.raises(ConfigError):
        list(lake.list_files(prefix=path))
    assert every_entry(tmp_path) == []  # nothing written anywhere, not even a temp file


# -- LocalStorage: failures are transient lake errors --------------------------------------


def test_a_write_under_a_regular_file_raises_lake_unavailable(lake: LocalStorage) -> None:
    lake.write_atomic("wfm", b"a file where a directory should be")
    with pytest.raises(LakeUnavailableError) as info:
        lake.write_atomic(f"{PARTITION}/a.parquet", b"data")

    err = info.value
    assert isinstance(err, Transient)
    assert not isinstance(err, Terminal)
    assert err.url == lake.url
    assert err.operation == f"write {PARTITION}/a.parquet"
    assert isinstance(err.__cause__, OSError)
    assert lake.url in str(err)
    assert every_entry(lake.root) == ["wfm"]


def test_a_lake_root_that_cannot_be_created_raises_lake_unavailable(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    lake = LocalStorage(tmp_path / "blocker" / "lake")
    with pytest.raises(LakeUnavailableError):
        lake.write_atomic("a.parquet", b"data")


def test_a_failed_rename_leaves_no_temp_file(lake: LocalStorage) -> None:
    (lake.root / PARTITION / "a.parquet").mkdir(parents=True)  # a directory squats the name
    with pytest.raises(LakeUnavailableError):
        lake.write_atomic(f"{PARTITION}/a.parquet", b"data")
    assert every_entry(lake.root) == []


def test_the_same_write_succeeds_once_the_cause_is_gone(lake: LocalStorage) -> None:
    squatter = lake.root / PARTITION / "a.parquet"
    squatter.mkdir(parents=True)
    with pytest.raises(LakeUnavailableError):
        lake.write_atomic(f"{PARTITION}/a.parquet", b"data")
    squatter.rmdir()
    lake.write_atomic(f"{PARTITION}/a.parquet", b"data")
    assert lake.read_bytes(f"{PARTITION}/a.parquet") == b"data"
    assert every_entry(lake.root) == [f"{PARTITION}/a.parquet"]


def test_a_partition_removed_after_a_write_is_recreated(lake: LocalStorage) -> None:
    # An operator (or a retention job) may delete a partition while the writer runs; the writer
    # retries transient errors forever, so a write that can never succeed again wedges it.
    lake.write_atomic(f"{PARTITION}/a.parquet", b"one")
    shutil.rmtree(lake.root / "wfm")
    lake.write_atomic(f"{PARTITION}/b.parquet", b"two")
    assert lake.read_bytes(f"{PARTITION}/b.parquet") == b"two"


# -- LocalStorage: reading and listing -----------------------------------------------------


def test_read_open_and_exists(lake: LocalStorage) -> None:
    data = b"PAR1" + bytes(range(256)) + b"PAR1"
    lake.write_atomic(f"{PARTITION}/a.parquet", data)

    assert lake.exists(f"{PARTITION}/a.parquet")
    assert lake.exists(PARTITION)
    assert not lake.exists(f"{PARTITION}/b.parquet")
    with lake.open_input(f"{PARTITION}/a.parquet") as stream:
        stream.seek(-4, io.SEEK_END)  # Parquet readers start at the footer
        assert stream.read() == b"PAR1"
        stream.seek(0)
        assert stream.read() == data


def test_list_files_skips_dot_and_temp_files_and_filters(lake: LocalStorage) -> None:
    lake.write_atomic(f"{PARTITION}/a.parquet", b"aa")
    lake.write_atomic(f"{PARTITION}/b.parquet", b"bbb")
    lake.write_atomic(f"{PARTITION}/notes.txt", b"n")
    lake.write_atomic(
        "wfm/_quarantine/profiles/tenant=acme/year=2026/month=01/day=31/q.parquet", b"q"
    )
    lake.write_atomic("labs/results/tenant=acme/year=2026/month=01/day=31/c.parquet", b"c")
    lake.write_atomic("top.parquet", b"t")
    # what a writer killed mid-write leaves behind, and other hidden files
    (lake.root / PARTITION / f".c.parquet.{uuid.uuid4().hex}.tmp").write_bytes(b"partial")
    (lake.root / PARTITION / ".DS_Store").write_bytes(b"")
    (lake.root / ".hidden.parquet").write_bytes(b"")

    everything = list(lake.list_files())
    assert [f.path for f in everything] == [
        "top.parquet",
        "labs/results/tenant=acme/year=2026/month=01/day=31/c.parquet",
        "wfm/_quarantine/profiles/tenant=acme/year=2026/month=01/day=31/q.parquet",
        f"{PARTITION}/a.parquet",
        f"{PARTITION}/b.parquet",
        f"{PARTITION}/notes.txt",
    ]
    assert list(lake.list_files("wfm/profiles", ".parquet")) == [
        StoredFile(f"{PARTITION}/a.parquet", 2),
        StoredFile(f"{PARTITION}/b.parquet", 3),
    ]
    assert [f.path for f in lake.list_files("wfm", ".txt")] == [f"{PARTITION}/notes.txt"]
    assert [f.path for f in lake.list_files(suffix=".tmp")] == []
    assert list(lake.list_files("no/such/prefix")) == []


def test_list_files_on_a_lake_that_does_not_exist_yet_is_empty(tmp_path: Path) -> None:
    assert list(LocalStorage(tmp_path / "nothing").list_files()) == []


# -- open_lake and specs -------------------------------------------------------------------


def test_local_paths_and_file_urls_open_local_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_path = open_lake(str(tmp_path / "lake"))
    by_url = open_lake(f"file://{tmp_path / 'lake'}")
    assert isinstance(by_path, LocalStorage)
    assert isinstance(by_url, LocalStorage)
    assert by_path.root == by_url.root == tmp_path / "lake"

    monkeypatch.chdir(tmp_path)
    relative = open_lake("lake")
    assert isinstance(relative, LocalStorage)
    assert relative.root == tmp_path / "lake"  # resolved now, not against a later cwd

    by_url.write_atomic("x.parquet", b"x")
    assert by_path.read_bytes("x.parquet") == b"x"


def test_an_unknown_protocol_is_a_config_error_naming_the_url() -> None:
    with pytest.raises(ConfigError) as info:
        open_lake("nosuchproto://bucket/lake")
    message = str(info.value)
    assert "nosuchproto://bucket/lake" in message
    assert "unsupported lake URL" in message
    assert "nosuchproto" in message.split(":", 1)[1]


def test_a_missing_driver_is_a_config_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # adlfs is an optional extra (installed for development): fail its import the way
    # fsspec does when the extra is missing.
    import fsspec.core

    def missing_driver(url: str, **_: object) -> None:
        raise ImportError("Install adlfs to access Azure Datalake Gen2 and Azure Blob Storage")

    monkeypatch.setattr(fsspec.core, "url_to_fs", missing_driver)
    with pytest.raises(ConfigError, match=r"pip install 'stratalake\[azure\]'"):
        open_lake("abfs://container/lake")


def test_local_storage_rebuilds_from_its_spec(tmp_path: Path) -> None:
    original = LocalStorage(tmp_path / "lake", fsync=False)
    original.write_atomic("a/b.parquet", b"data")

    copy = rebuilt(original)
    assert isinstance(copy, LocalStorage)
    assert (copy.root, copy.fsync, copy.url) == (original.root, False, original.url)
    assert copy.spec() == original.spec()
    assert copy.read_bytes("a/b.parquet") == b"data"


@pytest.fixture
def memory_lake() -> Iterator[FsspecStorage]:
    storage = open_lake(f"memory://strata-test-{uuid.uuid4().hex}")
    assert isinstance(storage, FsspecStorage)
    yield storage
    if storage.fs.exists(storage.root):
        storage.fs.rm(storage.root, recursive=True)


def test_memory_storage_rebuilds_from_its_spec(memory_lake: FsspecStorage) -> None:
    memory_lake.write_atomic(f"{PARTITION}/a.parquet", b"data")

    copy = rebuilt(memory_lake)
    assert isinstance(copy, FsspecStorage)
    assert copy.url == memory_lake.url
    assert copy.spec() == memory_lake.spec()
    assert copy.read_bytes(f"{PARTITION}/a.parquet") == b"data"
    copy.write_atomic(f"{PARTITION}/b.parquet", b"more")
    assert [f.path for f in memory_lake.list_files(suffix=".parquet")] == [
        f"{PARTITION}/a.parquet",
        f"{PARTITION}/b.parquet",
    ]


def test_memory_storage_behaves_like_a_lake(memory_lake: FsspecStorage) -> None:
    memory_lake.write_atomic(f"{PARTITION}/a.parquet", b"first")
    memory_lake.write_atomic(f"{PARTITION}/a.parquet", b"second")
    memory_lake.write_atomic(f"{PARTITION}/.a.parquet.tmp", b"hidden")
    memory_lake.write_atomic(f"{PARTITION}/notes.txt", b"n")

    assert memory_lake.read_bytes(f"{PARTITION}/a.parquet") == b"second"
    assert memory_lake.exists(f"{PARTITION}/a.parquet")
    assert not memory_lake.exists(f"{PARTITION}/zzz.parquet")
    assert list(memory_lake.list_files("wfm", ".parquet")) == [
        StoredFile(f"{PARTITION}/a.parquet", 6)
    ]
    assert list(memory_lake.list_files("other")) == []


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_fsspec_reads_reject_escaping_paths_as_config_errors(
    memory_lake: FsspecStorage, path: str
) -> None:
    with pytest.raises(ConfigError):
        memory_lake.read_bytes(path)
    with pytest.raises(ConfigError):
        memory_lake.open_input(path)
    with pytest.raises(ConfigError):
        memory_lake.exists(path)
    with pytest.raises(ConfigError):
        list(memory_lake.list_files(prefix=path))


def test_fsspec_writes_reject_escaping_paths_as_config_errors(memory_lake: FsspecStorage) -> None:
    # A bad path is Terminal: wrapped as a Transient LakeUnavailableError, the writer would
    # retry it forever.
    for path in ESCAPING_PATHS:
        with pytest.raises(ConfigError) as info:
            memory_lake.write_atomic(path, b"x")
        assert not isinstance(info.value, Transient)


def test_a_factory_that_is_not_a_storage_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="did not return a LakeStorage"):
        storage_from_spec({"factory": "builtins:dict", "kwargs": {}})


# -- FaultInjectingStorage -----------------------------------------------------------------


def test_fault_injection_fails_while_the_switch_exists(tmp_path: Path, lake: LocalStorage) -> None:
    switch = tmp_path / "outage"
    faulty = FaultInjectingStorage(lake, switch, latency_s=0.2)
    faulty.write_atomic("before.parquet", b"ok")
    switch.touch()

    started = time.monotonic()
    with pytest.raises(LakeUnavailableError) as info:
        faulty.write_atomic("during.parquet", b"lost")
    assert time.monotonic() - started >= 0.2  # the outage looks like a slow, unreachable lake
    assert isinstance(info.value, Transient)
    assert info.value.operation == "write during.parquet"
    assert "injected outage" in str(info.value)
    with pytest.raises(LakeUnavailableError):
        faulty.read_bytes("before.parquet")
    with pytest.raises(LakeUnavailableError):
        faulty.open_input("before.parquet")
    assert every_entry(lake.root) == ["before.parquet"]  # the failed write reached nothing

    switch.unlink()
    faulty.write_atomic("during.parquet", b"retried")
    assert faulty.read_bytes("during.parquet") == b"retried"
    with faulty.open_input("before.parquet") as stream:
        assert stream.read() == b"ok"
    assert faulty.exists("during.parquet")
    assert [f.path for f in faulty.list_files()] == ["before.parquet", "during.parquet"]


def test_fault_injection_delay_slows_successful_writes(tmp_path: Path, lake: LocalStorage) -> None:
    faulty = FaultInjectingStorage(lake, tmp_path / "outage", delay_s=0.2)
    started = time.monotonic()
    faulty.write_atomic("a.parquet", b"slow but fine")
    assert time.monotonic() - started >= 0.2
    assert lake.read_bytes("a.parquet") == b"slow but fine"


def test_fault_injecting_storage_rebuilds_from_its_spec(tmp_path: Path, lake: LocalStorage) -> None:
    switch = tmp_path / "outage"
    faulty = FaultInjectingStorage(lake, switch, latency_s=0.05, delay_s=0.01)

    copy = rebuilt(faulty)
    assert isinstance(copy, FaultInjectingStorage)
    assert isinstance(copy.inner, LocalStorage)
    assert copy.inner.root == lake.root
    assert (copy.switch, copy.latency_s, copy.delay_s, copy.url) == (switch, 0.05, 0.01, lake.url)
    assert copy.spec() == faulty.spec()

    switch.touch()  # the switch is shared: an outage started here reaches the rebuilt copy
    with pytest.raises(LakeUnavailableError):
        copy.write_atomic("a.parquet", b"x")
    switch.unlink()
    copy.write_atomic("a.parquet", b"x")
    assert lake.read_bytes("a.parquet") == b"x"


# -- S3 through a local moto server --------------------------------------------------------

BUCKET = "strata-test"


def s3_client(endpoint: str) -> Any:
    # moto accepts any credentials; these never leave the loopback server
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


@pytest.fixture
def s3_lake(s3_endpoint: str) -> FsspecStorage:
    storage = open_lake(f"s3://{BUCKET}/lake-{uuid.uuid4().hex}", s3_options(s3_endpoint))
    assert isinstance(storage, FsspecStorage)
    return storage


def object_keys(endpoint: str, prefix: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_s3_lake_writes_reads_and_lists(s3_endpoint: str, s3_lake: FsspecStorage) -> None:
    prefix = s3_lake.root.removeprefix(f"{BUCKET}/")
    data = b"PAR1" + os.urandom(1000) + b"PAR1"
    s3_lake.write_atomic(f"{PARTITION}/a.parquet", data)
    s3_lake.write_atomic(f"{PARTITION}/b.parquet", b"first")
    s3_lake.write_atomic(f"{PARTITION}/b.parquet", b"retry")  # a retried batch stays one object
    s3_lake.write_atomic(f"{PARTITION}/.b.parquet.tmp", b"hidden")
    s3_lake.write_atomic("labs/results/notes.txt", b"n")

    assert object_keys(s3_endpoint, prefix) == [
        f"{prefix}/labs/results/notes.txt",
        f"{prefix}/{PARTITION}/.b.parquet.tmp",
        f"{prefix}/{PARTITION}/a.parquet",
        f"{prefix}/{PARTITION}/b.parquet",
    ]
    assert s3_lake.read_bytes(f"{PARTITION}/a.parquet") == data
    assert s3_lake.read_bytes(f"{PARTITION}/b.parquet") == b"retry"
    assert s3_lake.exists(f"{PARTITION}/a.parquet")
    assert not s3_lake.exists(f"{PARTITION}/c.parquet")
    with s3_lake.open_input(f"{PARTITION}/a.parquet") as stream:
        stream.seek(-4, io.SEEK_END)
        assert stream.read() == b"PAR1"
        stream.seek(0)
        assert stream.read() == data

    assert list(s3_lake.list_files(suffix=".parquet")) == [
        StoredFile(f"{PARTITION}/a.parquet", len(data)),
        StoredFile(f"{PARTITION}/b.parquet", 5),
    ]
    assert [f.path for f in s3_lake.list_files("labs")] == ["labs/results/notes.txt"]
    assert list(s3_lake.list_files("no/such/prefix")) == []


def test_s3_lake_rebuilds_from_its_spec(s3_lake: FsspecStorage) -> None:
    s3_lake.write_atomic(f"{PARTITION}/a.parquet", b"from the parent")

    copy = rebuilt(s3_lake)
    assert isinstance(copy, FsspecStorage)
    assert copy.url == s3_lake.url
    assert copy.spec() == s3_lake.spec()
    assert copy.read_bytes(f"{PARTITION}/a.parquet") == b"from the parent"
    copy.write_atomic(f"{PARTITION}/b.parquet", b"from the writer")
    assert [f.path for f in s3_lake.list_files()] == [
        f"{PARTITION}/a.parquet",
        f"{PARTITION}/b.parquet",
    ]


def test_s3_lake_rejects_escaping_paths(s3_lake: FsspecStorage) -> None:
    for path in ESCAPING_PATHS:
        with pytest.raises(ConfigError):
            s3_lake.read_bytes(path)
        with pytest.raises(ConfigError):
            s3_lake.write_atomic(path, b"x")


def test_s3_write_to_a_missing_bucket_is_lake_unavailable(s3_endpoint: str) -> None:
    storage = open_lake("s3://no-such-bucket/lake", s3_options(s3_endpoint))
    with pytest.raises(LakeUnavailableError) as info:
        storage.write_atomic("a.parquet", b"x")
    assert isinstance(info.value, Transient)
    assert info.value.url == "s3://no-such-bucket/lake"
