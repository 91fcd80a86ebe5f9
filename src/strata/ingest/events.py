"""Domain-event envelopes (seed 004): validation, event type -> table, batching keys. Pure.

An envelope is a JSON object with ``event_id`` (non-empty string), ``type`` (dotted, e.g.
``melmastoon.reservation.created.v1``), ``tenant_id`` (a Strata tenant identifier),
``occurred_at`` (ISO-8601 timestamp with an offset or ``Z``) and ``payload`` (any JSON).

Table naming rule: drop the first segment of ``type`` (the platform prefix), join the rest
with ``_``, lowercase, replace every character outside ``[a-z0-9_]`` with ``_``; if the result
does not start with a letter prefix ``e_``; it must then be a valid Strata name
(``[a-z][a-z0-9_]{0,62}``), else the event is invalid. A type with a single segment keeps it.
``melmastoon.reservation.created.v1`` -> ``reservation_created_v1``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from strata.core.identifiers import is_valid_name, is_valid_tenant

ENVELOPE_FIELDS: Final = ("event_id", "type", "tenant_id", "occurred_at", "payload")
_TYPE_RE: Final = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_UNSAFE: Final = re.compile(r"[^a-z0-9_]")


class InvalidEventError(ValueError):
    """An event that cannot be landed; ``tenant`` is set when the tenant id was usable."""

    def __init__(self, reason: str, tenant: str | None = None) -> None:
        self.reason = reason
        self.tenant = tenant
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    type: str
    tenant_id: str
    occurred_at: dt.datetime  # UTC, aware
    payload_json: str
    table: str

    @property
    def day(self) -> dt.date:
        return self.occurred_at.date()

    @property
    def key(self) -> tuple[str, str, dt.date]:
        """The batching key: one file per (table, tenant, day) per batch."""
        return (self.table, self.tenant_id, self.day)


def table_for_type(event_type: str) -> str:
    """Map an event type to its bronze table name (rule in the module docstring)."""
    if not isinstance(event_type, str) or _TYPE_RE.fullmatch(event_type) is None:
        raise InvalidEventError(f"invalid event type {event_type!r}")
    parts = event_type.split(".")
    rest = parts[1:] if len(parts) > 1 else parts
    name = _UNSAFE.sub("_", "_".join(rest).lower())
    if not name[:1].isalpha():
        name = f"e_{name}"
    if not is_valid_name(name):
        raise InvalidEventError(f"event type {event_type!r} gives no valid table name")
    return name


def parse_timestamp(value: object) -> dt.datetime:
    if not isinstance(value, str) or not value:
        raise InvalidEventError(f"occurred_at must be an ISO-8601 string, got {value!r}")
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEventError(f"occurred_at is not an ISO-8601 timestamp: {value!r}") from None
    if ts.tzinfo is None:
        raise InvalidEventError(f"occurred_at has no UTC offset: {value!r}")
    return ts.astimezone(dt.UTC)


def parse_event(data: bytes) -> Event:
    """Validate one raw message; raises ``InvalidEventError`` with the reason."""
    try:
        obj: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEventError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEventError("envelope is not a JSON object")
    tenant_raw = obj.get("tenant_id")
    if isinstance(tenant_raw, int) and not isinstance(tenant_raw, bool) and tenant_raw >= 0:
        tenant_raw = str(tenant_raw)
    tenant = tenant_raw if is_valid_tenant(tenant_raw) else None
    missing = [f for f in ENVELOPE_FIELDS if f not in obj]
    if missing:
        raise InvalidEventError(f"missing envelope fields: {', '.join(missing)}", tenant)
    if tenant is None:
        raise InvalidEventError(f"invalid tenant_id {tenant_raw!r}")
    event_id = obj["event_id"]
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        raise InvalidEventError(f"invalid event_id {event_id!r}", tenant)
    try:
        table = table_for_type(obj["type"])
        occurred = parse_timestamp(obj["occurred_at"])
    except InvalidEventError as exc:
        raise InvalidEventError(exc.reason, tenant) from None
    payload = json.dumps(obj["payload"], separators=(",", ":"), sort_keys=True)
    return Event(event_id, obj["type"], tenant, occurred, payload, table)
