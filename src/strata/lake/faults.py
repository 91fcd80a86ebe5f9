"""A storage backend that fails on purpose: the seam for outage tests and benchmarks.

Failures are switched by a file, so a test can start and end an outage for a writer that
runs in another process: while ``switch`` exists, every write waits ``latency_s`` and then
fails like an unreachable lake. ``delay_s`` slows every successful write, like a distant
object store, so that work is still in flight when a test pulls the plug.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from strata.lake.storage import LakeStorage, LakeUnavailableError, StoredFile


class FaultInjectingStorage(LakeStorage):
    def __init__(
        self, inner: LakeStorage, switch: str | Path, latency_s: float = 0.0, delay_s: float = 0.0
    ) -> None:
        self.inner = inner
        self.switch = Path(switch)
        self.latency_s = latency_s
        self.delay_s = delay_s
        self.url = inner.url

    def spec(self) -> dict[str, Any]:
        return {
            "factory": "strata.lake.faults:FaultInjectingStorage",
            "kwargs": {
                "inner": self.inner.spec(),
                "switch": str(self.switch),
                "latency_s": self.latency_s,
                "delay_s": self.delay_s,
            },
        }

    def _maybe_fail(self, operation: str) -> None:
        if self.switch.exists():
            time.sleep(self.latency_s)
            raise LakeUnavailableError(self.url, operation, ConnectionError("injected outage"))

    def write_atomic(self, path: str, data: bytes | memoryview) -> None:
        self._maybe_fail(f"write {path}")
        time.sleep(self.delay_s)
        self.inner.write_atomic(path, data)

    def read_bytes(self, path: str) -> bytes:
        self._maybe_fail(f"read {path}")
        return self.inner.read_bytes(path)

    def open_input(self, path: str) -> BinaryIO:
        self._maybe_fail(f"open {path}")
        return self.inner.open_input(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def list_files(self, prefix: str = "", suffix: str = "") -> Iterator[StoredFile]:
        return self.inner.list_files(prefix, suffix)
