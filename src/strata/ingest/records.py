"""Validating and encoding records, and learning each table's shape from them.

The fast path is a cached verdict per record *signature* (table, field names, value
types): once a signature has been accepted, a record costs a tuple build, a dict lookup
and one ``orjson.dumps``. A new signature takes the slow path: it is classified against
the table's shape, and the shape grows only when every record of the call encodes, so a
rejected record never leaves a trace (``ingest_many`` is all-or-nothing).
"""

from __future__ import annotations

import decimal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import orjson

from strata.ingest.errors import InvalidRecordError
from strata.ingest.journal import SharedShapes, merge_shape
from strata.ingest.shape import Kind, UnsupportedValueError, Verdict, classify

_OPTIONS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
_NESTED_OPTIONS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

Signature = tuple[str, tuple[object, ...], tuple[type, ...]]
Encoded = tuple[bytes, str | None]
"""A record's JSON line, and the quarantine reason when its shape conflicts."""

Shapes = dict[str, dict[str, Kind]]


def _encode_extra(value: object) -> object:
    """orjson's hook for the types it has no JSON form for."""
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact; the column is tagged so silver can cast it back
    raise TypeError(f"a value of type {type(value).__name__} cannot be stored")


def signature(table: str, record: Mapping[str, Any]) -> Signature:
    return (table, tuple(record), tuple(map(type, record.values())))


class RecordEncoder:
    """Turns records into journal payloads. Thread-safe.

    Shapes are shared by every process of one service (``SharedShapes``): a new signature is
    classified under that store's lock against the freshest shape, and the grown shape is
    written back before the lock is released, so two workers cannot learn opposite types.
    ``on_shape_change`` tells the journal, so the writer can type the records that follow.
    """

    def __init__(
        self,
        store: SharedShapes,
        *,
        on_shape_change: Callable[[str, dict[str, Kind]], None],
        max_payload: int,
    ) -> None:
        self._store = store
        self._shapes: Shapes = store.read()  # type: ignore[assignment]
        self._on_shape_change = on_shape_change
        self.max_payload = max_payload  # the owner lowers it as shapes grow
        self._verdicts: dict[Signature, Verdict] = {}
        self._learning = threading.Lock()

    @property
    def shapes(self) -> Shapes:
        return self._shapes

    def encode_one(self, table: str, tenant: str, record: Mapping[str, Any]) -> Encoded:
        try:  # signature() inlined: this is the per-record hot path
            verdict = self._verdicts.get((table, tuple(record), tuple(map(type, record.values()))))
        except (AttributeError, TypeError):
            raise _not_a_dict(table, tenant, record, None) from None
        if verdict is None:
            return self._learn_and_encode(table, tenant, (record,))[0]
        return self._encode(table, tenant, record, verdict, None), verdict.conflict

    def encode_many(
        self, table: str, tenant: str, records: Iterable[Mapping[str, Any]]
    ) -> list[Encoded]:
        """Encode every record or none: the first invalid one raises, naming its index."""
        batch = records if isinstance(records, (list, tuple)) else list(records)
        out: list[Encoded] = []
        # Records of one call usually share a signature: compare with the previous one
        # (an identity check per element) before hashing, and inline the common checks.
        last_keys: tuple[object, ...] = ()
        last_types: tuple[type, ...] = ()
        verdict: Verdict | None = None
        dumps, limit = orjson.dumps, self.max_payload
        for index, record in enumerate(batch):
            try:
                keys = tuple(record)
                types = tuple(map(type, record.values()))
            except (AttributeError, TypeError):
                raise _not_a_dict(table, tenant, record, index) from None
            if verdict is None or keys != last_keys or types != last_types:
                verdict = self._verdicts.get((table, keys, types))
                if verdict is None:
                    return self._learn_and_encode(table, tenant, batch)
                last_keys, last_types = keys, types
                simple = not (verdict.json_fields or verdict.conflict)
                floats, ints = verdict.float_fields, verdict.int_fields
            if not simple:
                out.append((self._encode(table, tenant, record, verdict, index), verdict.conflict))
                continue
            for name in floats:
                value = record[name]
                if value - value != 0.0:
                    raise _not_finite(table, tenant, name, value, index)
            for name in ints:
                if not _INT64_MIN <= record[name] <= _INT64_MAX:
                    raise _too_big(table, tenant, name, index)
            try:
                payload = dumps(record, default=_encode_extra, option=_OPTIONS)
            except orjson.JSONEncodeError:
                payload = self._encode(table, tenant, record, verdict, index)  # raises, naming why
            if len(payload) > limit:
                raise _too_large(table, tenant, len(payload), limit, index)
            out.append((payload, None))
        return out

    def _learn_and_encode(
        self, table: str, tenant: str, batch: Sequence[Mapping[str, Any]]
    ) -> list[Encoded]:
        """The slow path: classify new signatures, and grow the shape only if all records encode."""
        with self._learning, self._store.locked():
            for name, shape in self._store.read().items():
                merge_shape(self._shapes.setdefault(name, {}), shape)  # type: ignore[arg-type]
            working = dict(self._shapes.get(table, {}))
            pending: dict[Signature, Verdict] = {}
            out: list[Encoded] = []
            for index, record in enumerate(batch):
                try:
                    sig = signature(table, record)
                except (AttributeError, TypeError):
                    raise _not_a_dict(
                        table, tenant, record, index if len(batch) > 1 else None
                    ) from None
                where = index if len(batch) > 1 else None
                verdict = self._verdicts.get(sig) or pending.get(sig)
                if verdict is None:
                    verdict = pending[sig] = self._classify(sig, tenant, working, where)
                out.append((self._encode(table, tenant, record, verdict, where), verdict.conflict))
            if working != self._shapes.get(table, {}):
                self._on_shape_change(table, working)  # first: it refuses if the client closed
                self._shapes[table] = working
                self._store.write(self._shapes)
            self._verdicts.update(pending)
        return out

    def _classify(
        self, sig: Signature, tenant: str, working: dict[str, Kind], index: int | None
    ) -> Verdict:
        table, keys, types = sig
        try:
            verdict = classify(table, keys, types, working)
        except UnsupportedValueError as exc:
            raise InvalidRecordError(
                table, tenant, exc.reason, field=exc.field, index=index
            ) from None
        working.update(verdict.shape_changes)
        return verdict

    def _encode(
        self,
        table: str,
        tenant: str,
        record: Mapping[str, Any],
        verdict: Verdict,
        index: int | None,
    ) -> bytes:
        for name in verdict.float_fields:
            value = record[name]
            if value - value != 0.0:  # NaN or ±infinity: no JSON form, so no silent null
                raise _not_finite(table, tenant, name, value, index)
        for name in verdict.int_fields:
            if not _INT64_MIN <= record[name] <= _INT64_MAX:
                raise _too_big(table, tenant, name, index)
        if verdict.json_fields and verdict.conflict is None:
            record = dict(record)
            for name in verdict.json_fields:
                try:
                    record[name] = orjson.dumps(
                        record[name], default=_encode_extra, option=_NESTED_OPTIONS
                    ).decode()
                except orjson.JSONEncodeError as exc:
                    raise InvalidRecordError(
                        table,
                        tenant,
                        f"nested value cannot be stored: {exc}",
                        field=name,
                        index=index,
                    ) from None
        try:
            payload = orjson.dumps(record, default=_encode_extra, option=_OPTIONS)
        except orjson.JSONEncodeError as exc:
            field = next((k for k, v in record.items() if not _serializable(v)), None)
            raise InvalidRecordError(table, tenant, str(exc), field=field, index=index) from None
        limit = self.max_payload
        if len(payload) > limit:
            raise _too_large(table, tenant, len(payload), limit, index)
        return payload


def _serializable(value: object) -> bool:
    try:
        orjson.dumps(value, default=_encode_extra)
    except orjson.JSONEncodeError:
        return False
    return True


def _not_a_dict(table: str, tenant: str, record: object, index: int | None) -> InvalidRecordError:
    return InvalidRecordError(
        table, tenant, f"record must be a dict, got {type(record).__name__}", index=index
    )


def _not_finite(
    table: str, tenant: str, field: str, value: float, index: int | None
) -> InvalidRecordError:
    reason = f"{value!r} cannot be stored; use None for a missing number"
    return InvalidRecordError(table, tenant, reason, field=field, index=index)


def _too_big(table: str, tenant: str, field: str, index: int | None) -> InvalidRecordError:
    reason = "integer does not fit in a 64-bit column"
    return InvalidRecordError(table, tenant, reason, field=field, index=index)


def _too_large(
    table: str, tenant: str, size: int, limit: int, index: int | None
) -> InvalidRecordError:
    reason = f"record is {size} bytes encoded; the limit is {limit}"
    return InvalidRecordError(table, tenant, reason, index=index)
