"""Writing extracted rows to bronze as ``jsonl.gz`` parts (seed 003), one part per chunk:

    bronze/{source}/scope={scope}/entity={entity}/ingestion_date={YYYY-MM-DD}/run_id={run_id}/part-{N}.jsonl.gz

Each line is one JSON object: the row's columns plus ``_tenant`` when the table declares a
tenant column. Lineage is (file, line number): a part is immutable once written, so a
record is addressed by its path and its 1-based line. Values are JSON-safe: timestamps are
ISO-8601 UTC (naive database timestamps are taken as UTC), decimals are strings (no float
rounding), bytes are base64, UUIDs are text.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import io
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from strata.lake.storage import LakeStorage

TENANT_FIELD: Final = "_tenant"
SUFFIX: Final = ".jsonl.gz"


def run_prefix(source: str, scope: str, entity: str, ingestion_date: dt.date, run_id: str) -> str:
    return (
        f"bronze/{source}/scope={scope}/entity={entity}"
        f"/ingestion_date={ingestion_date.isoformat()}/run_id={run_id}"
    )


def part_path(prefix: str, n: int) -> str:
    return f"{prefix}/part-{n}{SUFFIX}"


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware values converted to UTC; naive ones are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dt.datetime):
        return to_utc(value).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    return str(value)


def encode_part(records: Iterable[Mapping[str, Any]]) -> bytes:
    """The gzip bytes of one part: one compact JSON object per line, UTF-8."""
    buffer = io.BytesIO()
    # mtime=0: the same rows give the same bytes (idempotent, comparable re-runs).
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        for record in records:
            line = json.dumps(
                {k: json_safe(v) for k, v in record.items()},
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
            )
            gz.write(line.encode("utf-8"))
            gz.write(b"\n")
    return buffer.getvalue()


def write_part(storage: LakeStorage, path: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Write one part atomically (readers see all of it or nothing); returns its size."""
    data = encode_part(records)
    storage.write_atomic(path, data)
    return len(data)


def read_part(storage: LakeStorage, path: str) -> list[dict[str, Any]]:
    """The records of one part, in line order (line ``i`` is ``result[i - 1]``)."""
    text = gzip.decompress(storage.read_bytes(path)).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line]
