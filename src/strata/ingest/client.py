"""``IngestClient``: what a microservice embeds to land records in bronze.

    with IngestClient("./lake", namespace="wfm", source_service="wfm-service") as client:
        client.ingest("profiles", tenant="acme", record={"id": 1, "name": "Ana"})

``ingest`` validates, encodes and journals the record, then returns: a memory copy into a
mapped journal segment, never a call to the lake. A background writer batches records per
(table, tenant, day) into Parquet files. See ``pipeline`` and ``writer`` for the mechanics.
"""

from __future__ import annotations

import decimal
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import orjson

from strata.core.errors import InvalidIdentifierError
from strata.core.identifiers import validate_name, validate_tenant
from strata.core.logging import fields, get_logger
from strata.core.timeutil import Clock, now_us
from strata.ingest.config import IngestConfig
from strata.ingest.errors import ClientClosedError, FlushTimeoutError, InvalidRecordError
from strata.ingest.journal import JournalDir
from strata.ingest.pipeline import Pipeline
from strata.ingest.shape import UnsupportedValueError, Verdict, classify
from strata.ingest.stats import IngestStats
from strata.ingest.statelog import StateLog
from strata.ingest.writer import Writer
from strata.lake.storage import LakeStorage, open_lake

log = get_logger(__name__)

_OPTIONS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
_NESTED_OPTIONS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

Signature = tuple[str, tuple[object, ...], tuple[type, ...]]


def _encode_extra(value: object) -> object:
    """orjson's hook for the types it has no JSON form for."""
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact; the column is tagged so silver can cast it back
    raise TypeError(f"a value of type {type(value).__name__} cannot be stored")


def default_journal_root() -> Path:
    return Path(os.environ.get("STRATA_JOURNAL_DIR", ".strata/journal"))


class IngestClient:
    """Non-blocking, crash-safe landing of service records into the bronze lake.

    Thread-safe. One client per process and source service; each claims its own journal
    slot under ``journal_dir`` (default ``$STRATA_JOURNAL_DIR`` or ``./.strata/journal``).
    """

    def __init__(
        self,
        lake: str | LakeStorage = "./lake",
        *,
        namespace: str,
        source_service: str | None = None,
        journal_dir: str | os.PathLike[str] | None = None,
        config: IngestConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
        clock: Clock = now_us,
    ) -> None:
        self.namespace = validate_name(namespace, "namespace")
        self.source_service = validate_tenant(source_service or namespace)
        self.config = config or IngestConfig.from_env()
        self.storage = lake if isinstance(lake, LakeStorage) else open_lake(lake, storage_options)
        root = Path(journal_dir) if journal_dir is not None else default_journal_root()
        self._journal = JournalDir.claim(root / self.namespace / self.source_service)
        recovered = StateLog.recover(self._journal.path / "state.log")
        self._pipeline = Pipeline(self._journal, self.config)
        self._lock = self._pipeline.lock
        self._clock = clock
        self._streams: dict[tuple[object, object], str] = {}
        self._verdicts: dict[Signature, Verdict] = {}
        self._learn_lock = threading.Lock()
        self._closed = False
        self._max_payload = min(self.config.batch_max_bytes, self.config.segment_bytes // 4)
        self._writer = Writer(
            self._pipeline,
            self.storage,
            StateLog(self._journal.path / "state.log", fsync=self.config.fsync_interval_s is not None),
            recovered,
            namespace=self.namespace,
            source_service=self.source_service,
            session=uuid.uuid4().hex,
        )
        self._writer.start()
        log.info(
            "ingest client started",
            extra=fields(namespace=self.namespace, journal=str(self._journal.path), lake=self.storage.url),
        )

    # -- the hot path -----------------------------------------------------------------------

    def ingest(self, table: str, tenant: str | int, record: Mapping[str, Any]) -> None:
        """Accept one record; returns once it is journaled. Raises ``InvalidRecordError``."""
        ingested_us = self._clock()
        tenant_id = self._streams.get((table, tenant)) or self._check_stream(table, tenant)
        try:
            sig: Signature = (table, tuple(record), tuple(map(type, record.values())))
        except (AttributeError, TypeError):
            raise self._reject(table, tenant_id, f"record must be a dict, got {type(record).__name__}") from None
        verdict = self._verdicts.get(sig) or self._learn(sig, tenant_id)
        payload = self._encode(table, tenant_id, record, verdict)
        with self._lock:
            if self._closed:
                raise ClientClosedError
            if verdict.conflict is None:
                self._pipeline.accept(table, tenant_id, ingested_us, payload)
            else:
                self._pipeline.accept_quarantined(table, tenant_id, ingested_us, verdict.conflict, payload)

    def ingest_many(self, table: str, tenant: str | int, records: Iterable[Mapping[str, Any]]) -> int:
        """Accept records all-or-nothing: if one is invalid, none is journaled."""
        ingested_us = self._clock()
        tenant_id = self._streams.get((table, tenant)) or self._check_stream(table, tenant)
        encoded: list[tuple[bytes, str | None]] = []
        for index, record in enumerate(records):
            try:
                sig: Signature = (table, tuple(record), tuple(map(type, record.values())))
                verdict = self._verdicts.get(sig) or self._learn(sig, tenant_id)
                encoded.append((self._encode(table, tenant_id, record, verdict), verdict.conflict))
            except InvalidRecordError as exc:
                raise InvalidRecordError(table, tenant_id, exc.reason, field=exc.field, index=index) from None
            except (AttributeError, TypeError):
                raise self._reject(table, tenant_id, f"record must be a dict, got {type(record).__name__}", index=index) from None
        accept, quarantine = self._pipeline.accept, self._pipeline.accept_quarantined
        with self._lock:
            if self._closed:
                raise ClientClosedError
            for payload, conflict in encoded:
                if conflict is None:
                    accept(table, tenant_id, ingested_us, payload)
                else:
                    quarantine(table, tenant_id, ingested_us, conflict, payload)
        return len(encoded)

    def _check_stream(self, table: object, tenant: object) -> str:
        try:
            validate_name(table, "table")
            tenant_id = validate_tenant(tenant)
        except InvalidIdentifierError:
            with self._lock:
                self._pipeline.counters.rejected += 1
            raise
        self._streams[(table, tenant)] = tenant_id
        return tenant_id

    def _reject(self, table: str, tenant: str, reason: str, *, field: str | None = None, index: int | None = None) -> InvalidRecordError:
        with self._lock:
            self._pipeline.counters.rejected += 1
        return InvalidRecordError(table, tenant, reason, field=field, index=index)

    def _learn(self, sig: Signature, tenant: str) -> Verdict:
        """Classify a new signature against its table's shape, growing the shape if needed."""
        table, keys, types = sig
        with self._learn_lock, self._lock:
            shape = self._pipeline.shapes.setdefault(table, {})
            try:
                verdict = classify(table, keys, types, shape)
            except UnsupportedValueError as exc:
                self._pipeline.counters.rejected += 1
                raise InvalidRecordError(table, tenant, exc.reason, field=exc.field) from None
            if verdict.shape_changes:
                shape.update(verdict.shape_changes)
                self._pipeline.save_shapes()
            self._verdicts[sig] = verdict
        return verdict

    def _encode(self, table: str, tenant: str, record: Mapping[str, Any], verdict: Verdict) -> bytes:
        if verdict.conflict is None:
            for name in verdict.float_fields:
                value = record[name]
                if value - value != 0.0:  # NaN or ±infinity: no JSON form, so no silent null
                    raise self._reject(table, tenant, f"{value!r} cannot be stored; use None for a missing number", field=name)
            if verdict.json_fields:
                record = dict(record)
                for name in verdict.json_fields:
                    record[name] = self._dumps(table, tenant, name, record[name], _NESTED_OPTIONS).decode()
        try:
            payload = orjson.dumps(record, default=_encode_extra, option=_OPTIONS)
        except orjson.JSONEncodeError as exc:
            field = next((k for k, v in record.items() if not self._serializable(v)), None)
            raise self._reject(table, tenant, str(exc), field=field) from None
        if len(payload) > self._max_payload:
            raise self._reject(table, tenant, f"record is {len(payload)} bytes encoded; the limit is {self._max_payload}")
        return payload

    def _dumps(self, table: str, tenant: str, name: str, value: object, option: int) -> bytes:
        try:
            return orjson.dumps(value, default=_encode_extra, option=option)
        except orjson.JSONEncodeError as exc:
            raise self._reject(table, tenant, f"nested value cannot be stored: {exc}", field=name) from None

    @staticmethod
    def _serializable(value: object) -> bool:
        try:
            orjson.dumps(value, default=_encode_extra)
        except orjson.JSONEncodeError:
            return False
        return True

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record accepted before this call is committed to the lake."""
        p = self._pipeline
        with self._lock:
            target = p.appender.head
        with p.progress:
            p.flush_target = max(p.flush_target, target)
            p.wake.set()
            done = p.progress.wait_for(
                lambda: p.low_water >= target or p.fatal is not None or not self._writer.thread.is_alive(),
                timeout,
            )
        if p.fatal is not None:
            raise p.fatal
        if not done or p.low_water < target:
            raise FlushTimeoutError(timeout or 0.0, self.stats().journal_backlog, p.last_error)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer and release the journal.

        If the lake stays unreachable for ``timeout`` seconds, the records stay in the
        journal and the next client on the same journal directory lands them.
        """
        if self._closed:
            return
        try:
            self.flush(timeout)
        except FlushTimeoutError as exc:
            log.warning("closing with records still in the journal", extra=fields(backlog=exc.backlog))
            self._writer.abandon = True
        finally:
            with self._lock:
                self._closed = True
            self._writer.stop.set()
            self._pipeline.wake.set()
            self._writer.thread.join()
            self._writer.state_log.close()
            with self._lock:
                self._pipeline.save_shapes()
                self._pipeline.appender.close()
            self._journal.close()

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def stats(self) -> IngestStats:
        p = self._pipeline
        with self._lock:
            c = p.counters
            segments = [n for n in p.journal.segment_numbers() if n <= p.appender.segment_no]
            journal_bytes = sum(
                p.appender.offset if n == p.appender.segment_no else _size(p.journal.segment_path(n)) for n in segments
            )
            return IngestStats(
                accepted=c.accepted,
                rejected=c.rejected,
                quarantined=c.quarantined,
                replayed=c.replayed,
                written=c.written,
                files_written=c.files_written,
                retried=c.retried,
                journal_backlog=c.accepted + c.replayed - c.written,
                journal_bytes=journal_bytes,
                buffered_bytes=p.buffered_bytes,
                spilling=p.spill_from is not None,
                last_error=p.last_error,
            )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
