"""The client's handle on its writer process: start it, talk to it, restart it if it dies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any

import orjson

import strata
from strata.core.logging import get_logger
from strata.ingest.config import IngestConfig
from strata.ingest.errors import WriterFailedError
from strata.ingest.writer import WriterStatus

log = get_logger(__name__)

_RESTART_WINDOW_S = 60.0
_MAX_RESTARTS_IN_WINDOW = 5
_STATUS_FIELDS = {f.name for f in fields(WriterStatus)}


class WriterSupervisor:
    def __init__(
        self,
        *,
        journal: Path,
        namespace: str,
        source_service: str,
        session: str,
        live_from: int,
        config: IngestConfig,
        storage_spec: dict[str, Any],
    ) -> None:
        self._argv = [
            os.environ.get("STRATA_PYTHON", sys.executable),
            "-m",
            "strata.ingest.writerproc",
            "--journal",
            str(journal),
            "--namespace",
            namespace,
            "--source-service",
            source_service,
            "--session",
            session,
            "--live-from",
            str(live_from),
            "--config",
            orjson.dumps(asdict(config)).decode(),
            "--storage",
            orjson.dumps(storage_spec).decode(),
        ]
        src_root = str(Path(strata.__file__).resolve().parent.parent)
        self._env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [src_root, os.environ.get("PYTHONPATH")])),
        }
        self.status = WriterStatus(low_water=-1)
        self.restarts = 0
        self.failure: str | None = None
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._stopping = False
        self._restart_times: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._start()

    def _start(self) -> None:
        proc = subprocess.Popen(
            self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self._env, close_fds=True
        )
        self._proc = proc
        self._reader = threading.Thread(
            target=self._read_status, args=(proc,), daemon=True, name="strata-writer-status"
        )
        self._reader.start()

    def _read_status(self, proc: subprocess.Popen[bytes]) -> None:
        stdout: IO[bytes] = proc.stdout  # type: ignore[assignment]
        for line in stdout:
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            with self._cond:
                self.status = WriterStatus(**{k: v for k, v in data.items() if k in _STATUS_FIELDS})
                if data.get("fatal"):
                    self.failure = str(data["fatal"])
                self._cond.notify_all()
        code = proc.wait()
        stdout.close()
        with self._cond:
            if not self._stopping:
                self._on_unexpected_exit(code)
            self._cond.notify_all()

    def _on_unexpected_exit(self, code: int) -> None:
        now = time.monotonic()
        self._restart_times = [t for t in self._restart_times if now - t < _RESTART_WINDOW_S] + [
            now
        ]
        if len(self._restart_times) > _MAX_RESTARTS_IN_WINDOW:
            self.failure = self.failure or f"writer process exited with code {code}"
            log.error(
                "ingest writer keeps failing; giving up",
                extra={"exit_code": code, "error": self.failure},
            )
            return
        log.warning("ingest writer exited unexpectedly; restarting", extra={"exit_code": code})
        self.restarts += 1
        if self._proc is not None:
            _close_quietly(self._proc.stdin)
        self._start()

    def send(self, message: dict[str, Any]) -> None:
        with self._send_lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return
            try:
                proc.stdin.write(orjson.dumps(message) + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # the status reader sees the exit and restarts it

    def wait_for(self, target: int, timeout: float | None) -> bool:
        """Ask for everything before ``target`` to be committed and wait until it is."""
        self.send({"op": "flush", "target": target})
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.status.low_water < target:
                if self.failure is not None:
                    raise WriterFailedError(self.failure)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
                if self.status.low_water < target:
                    self.send(
                        {"op": "flush", "target": target}
                    )  # a restarted writer must hear it too
        return True

    def stop(self, *, abandon: bool, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
        self.send({"op": "stop", "abandon": abandon})
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("ingest writer did not stop in time; killing it")
            proc.kill()
            proc.wait()
        _close_quietly(proc.stdin)
        if self._reader is not None:
            self._reader.join()


def _close_quietly(stream: IO[bytes] | None) -> None:
    """Close a pipe to a process that may be gone (unflushed bytes then raise EPIPE)."""
    if stream is None:
        return
    try:
        stream.close()
    except OSError:
        pass
