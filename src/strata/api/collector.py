"""The HTTP collector's pure half: a request body becomes records grouped by tenant, and
every record that cannot land gets a reason.

No I/O here; ``strata.api.routes.ingest`` reads the body, calls ``read_records`` and hands
the batches to the ingest SDK. A body is a JSON array of objects, or NDJSON (one object per
line, ``Content-Type: application/x-ndjson``). A record is refused here for everything the
SDK would refuse it for (so a request that passes never fails half-way through, whatever
its tenants), and for its tenant:

* an ingest key bound to a tenant lands every record under that tenant; a record that
  names another in the tenant field is refused;
* a key bound to none takes each record's tenant from the tenant field
  (``[serve] collector_tenant_field``, default ``tenant_id``).

Records keep the tenant field, as the tenant's canonical string (``42`` becomes ``"42"``,
as in the lake's ``tenant=42`` partition), so one table's tenant column has one type.

Record indexes are 0-based positions among the records: the array's elements, or the
NDJSON body's non-blank lines (those also carry their 1-based ``line``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from strata.core.errors import InvalidIdentifierError, Terminal
from strata.core.identifiers import validate_tenant
from strata.ingest.shape import UnsupportedValueError, classify

BodyFormat = Literal["json", "ndjson"]

JSON_TYPE: Final = "application/json"
NDJSON_TYPE: Final = "application/x-ndjson"
# Names the same format goes by elsewhere (JSON Lines): accepted, never advertised.
_NDJSON_ALIASES: Final = frozenset({NDJSON_TYPE, "application/jsonl", "application/x-jsonlines"})
_INT64: Final = range(-(2**63), 2**63)
# Values the SDK stores as JSON text in a string column: sized as stored.
_NESTED: Final = (dict, list)


class UnsupportedBodyError(Terminal):
    """The body's media type is neither JSON nor NDJSON (answer 415)."""


class MalformedBodyError(Terminal):
    """The body as a whole cannot be read as records (answer 400); nothing in it lands."""


class RecordRefused(Terminal):
    """One record cannot land; ``reason`` says why without quoting more than a tenant."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class TenantRule:
    """Where records' tenants come from: the key's tenant, else each record's ``field``."""

    key_tenant: str | None
    field: str


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    index: int
    reason: str
    line: int | None = None  # NDJSON only

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"index": self.index, "reason": self.reason}
        if self.line is not None:
            shown["line"] = self.line
        return shown


@dataclass(slots=True)
class ReadRecords:
    """A body's records: the valid ones by tenant (in body order), and the rejected ones."""

    batches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: list[RejectedRecord] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return sum(map(len, self.batches.values()))

    @property
    def total(self) -> int:
        return self.valid + len(self.rejected)


def body_format(content_type: str | None) -> BodyFormat:
    """JSON or NDJSON from a ``Content-Type`` header; JSON when there is none."""
    media = (content_type or JSON_TYPE).split(";", 1)[0].strip().lower()
    if media == JSON_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return "json"
    if media in _NDJSON_ALIASES:
        return "ndjson"
    raise UnsupportedBodyError(
        f"send records as a JSON array (Content-Type: {JSON_TYPE}) or as NDJSON "
        f"(Content-Type: {NDJSON_TYPE}), not {media or 'an empty media type'}"
    )


def read_records(
    body: bytes, fmt: BodyFormat, *, table: str, tenants: TenantRule, max_record_bytes: int
) -> ReadRecords:
    """Parse ``body`` and check every record; ``MalformedBodyError`` if it is not records."""
    out = ReadRecords()
    for index, line, parsed in _items(body, fmt):
        try:
            if isinstance(parsed, _Unparsed):
                raise RecordRefused(parsed.reason)
            if not isinstance(parsed, dict):
                raise RecordRefused(f"record must be a JSON object, not {_json_kind(parsed)}")
            tenant = check_record(
                parsed, table=table, tenants=tenants, max_record_bytes=max_record_bytes
            )
        except RecordRefused as exc:
            out.rejected.append(RejectedRecord(index, exc.reason, line))
            continue
        if tenants.field in parsed:
            parsed[tenants.field] = tenant
        out.batches.setdefault(tenant, []).append(parsed)
    return out


def check_record(
    record: Mapping[str, Any], *, table: str, tenants: TenantRule, max_record_bytes: int
) -> str:
    """The tenant a record lands under; ``RecordRefused`` if it cannot land.

    Mirrors the ingest SDK's checks (``strata.ingest.records``): field names, 64-bit
    integers and the encoded size. A value of the wrong type for its column is not a
    reason: the SDK lands such records in quarantine, as for any other producer.
    """
    tenant = _tenant_of(record, tenants)
    try:
        classify(table, tuple(record), tuple(map(type, record.values())), {})
    except UnsupportedValueError as exc:
        raise RecordRefused(exc.reason) from None
    for name, value in record.items():
        if type(value) is int and value not in _INT64:
            raise RecordRefused(f"field {name!r}: integer does not fit in a 64-bit column")
    try:
        size = _encoded_size(record)
    except orjson.JSONEncodeError as exc:
        raise RecordRefused(f"record cannot be stored: {exc}") from None
    if size > max_record_bytes:
        raise RecordRefused(f"record is {size} bytes encoded; the limit is {max_record_bytes}")
    return tenant


def _tenant_of(record: Mapping[str, Any], rule: TenantRule) -> str:
    missing = rule.field not in record
    if rule.key_tenant is not None:
        if missing:
            return rule.key_tenant
        value = record[rule.field]
        try:
            named: str | None = validate_tenant(value)
        except InvalidIdentifierError:
            named = None
        if named != rule.key_tenant:
            raise RecordRefused(
                f"field {rule.field!r} is {_shown(value)}, but this key lands records "
                f"of tenant {rule.key_tenant!r} only"
            )
        return rule.key_tenant
    if missing:
        raise RecordRefused(f"no tenant: field {rule.field!r} is missing")
    try:
        return validate_tenant(record[rule.field])
    except InvalidIdentifierError as exc:
        raise RecordRefused(f"field {rule.field!r}: {exc}") from None


def _encoded_size(record: Mapping[str, Any]) -> int:
    """The size of the record's journal line, nested values as JSON text like the SDK's."""
    if any(isinstance(v, _NESTED) for v in record.values()):
        record = {
            k: orjson.dumps(v).decode() if isinstance(v, _NESTED) else v for k, v in record.items()
        }
    return len(orjson.dumps(record)) + 1  # and its newline


class _Unparsed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _items(body: bytes, fmt: BodyFormat) -> Iterator[tuple[int, int | None, object]]:
    """``(index, line, record or _Unparsed)`` for each record of the body."""
    if fmt == "json":
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBodyError(f"body is not valid JSON: {exc}") from None
        if not isinstance(parsed, list):
            raise MalformedBodyError(
                f"body must be a JSON array of records, not {_json_kind(parsed)} "
                f"(one record is [{{...}}]; or send NDJSON as {NDJSON_TYPE})"
            )
        for index, item in enumerate(parsed):
            yield index, None, item
        return
    index = 0
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue  # blank lines (and the final newline) are not records
        try:
            record: object = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            record = _Unparsed(f"line is not valid JSON: {exc}")
        yield index, number, record
        index += 1


def _shown(value: object, limit: int = 80) -> str:
    """A client's value in a reason: bounded (JSON numbers are never huge, strings may be)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
