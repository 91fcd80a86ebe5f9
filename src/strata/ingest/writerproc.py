"""The writer process: ``python -m strata.ingest.writerproc`` started by an ``IngestClient``.

Protocol, JSON lines over two pipes:
- stdin, from the client: ``{"op": "flush", "target": POS}``,
  ``{"op": "stop", "abandon": BOOL}``.
  End of file means the client is gone (even SIGKILLed): stop now; the next client's
  writer replays whatever is left.
- the original stdout, to the client: ``WriterStatus`` as JSON after every change and as a
  heartbeat. The process's own ``sys.stdout`` is pointed at stderr so that nothing else
  can write into the status pipe.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, BinaryIO

import orjson
import pyarrow as pa

from strata.core.logging import configure, fields, get_logger
from strata.ingest.config import IngestConfig
from strata.ingest.journal import JournalDir
from strata.ingest.writer import Abandoned, Writer
from strata.lake.storage import storage_from_spec

log = get_logger("strata.ingest.writerproc")

TICK_S = 0.02  # how often the journal is polled for new frames when idle
HEARTBEAT_S = 1.0


class StatusChannel:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._last: bytes = b""
        self._sent_at = 0.0

    def publish(self, writer: Writer, *, fatal: str | None = None, force: bool = False) -> None:
        body = orjson.dumps({**asdict(writer.status), "fatal": fatal})
        now = time.monotonic()
        if not force and body == self._last and now - self._sent_at < HEARTBEAT_S:
            return
        with self._lock:
            try:
                self._stream.write(body + b"\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                return  # the client is gone; the stdin reader stops us
        self._last, self._sent_at = body, now


def _read_control(writer: Writer, wake: threading.Event) -> None:
    for line in sys.stdin.buffer:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.error(
                "unreadable control message", extra=fields(line=line[:200].decode(errors="replace"))
            )
            continue
        if message.get("op") == "flush":
            writer.flush_target = max(writer.flush_target, int(message["target"]))
        elif message.get("op") == "stop":
            writer.abandon = bool(message.get("abandon"))
            writer.stop.set()
        wake.set()
    # End of input: the client exited or was killed. Stop without waiting for the lake.
    writer.abandon = True
    writer.stop.set()
    wake.set()


def _yield_to_producers() -> None:
    """Keep the writer from crowding out the service it serves.

    One Arrow thread and a lower CPU priority: on a small machine the service's own
    threads (and its ``ingest`` latency) come first; the writer uses what is idle.
    """
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        os.nice(int(os.environ.get("STRATA_WRITER_NICE", "5")))
    except OSError:
        pass


def run(args: argparse.Namespace, status_stream: BinaryIO) -> int:
    config = IngestConfig(**orjson.loads(args.config))
    spec: dict[str, Any] = orjson.loads(args.storage)
    journal = JournalDir(args.journal, role="writer")
    writer = Writer(
        journal,
        storage_from_spec(spec),
        config,
        namespace=args.namespace,
        source_service=args.source_service,
        session=args.session,
        live_from=args.live_from,
    )
    channel = StatusChannel(status_stream)
    wake = threading.Event()
    writer.on_retry = lambda: channel.publish(writer)  # type: ignore[method-assign]
    threading.Thread(target=_read_control, args=(writer, wake), daemon=True, name="control").start()
    try:
        while True:
            worked = writer.step()
            channel.publish(writer)
            if writer.stop.is_set() and (writer.abandon or writer.idle()):
                break
            if not worked:
                wake.wait(TICK_S)
                wake.clear()
    except Abandoned:
        log.warning(
            "writer stopped with records left in the journal", extra=fields(journal=args.journal)
        )
    except Exception as exc:
        log.exception("ingest writer failed", extra=fields(journal=args.journal))
        channel.publish(writer, fatal=f"{type(exc).__name__}: {exc}", force=True)
        return 1
    finally:
        writer.close()
        journal.close()
    channel.publish(writer, force=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata-ingest-writer")
    parser.add_argument("--journal", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--source-service", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--live-from", type=int, required=True)
    parser.add_argument("--config", required=True, help="IngestConfig as JSON")
    parser.add_argument("--storage", required=True, help="storage spec as JSON")
    args = parser.parse_args(argv)
    configure(
        os.environ.get("STRATA_LOG_LEVEL", "WARNING"), os.environ.get("STRATA_LOG_FORMAT", "json")
    )
    _yield_to_producers()
    # Keep the real stdout for status lines only; anything printed goes to stderr.
    status_stream = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    code = run(args, status_stream)
    status_stream.close()
    sys.stderr.flush()
    # The control thread is blocked reading stdin; a normal interpreter shutdown would
    # wait on (and complain about) it. Everything that matters is closed by now.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
