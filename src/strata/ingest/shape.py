"""Record shapes: what a table's columns hold, learned from the records themselves.

Pure logic. The client classifies each record by its *signature* (field names and Python
types, cached), so the per-record cost is a tuple build and a dict lookup. A record that
contradicts what its table already holds (a string where numbers were) is not an error
for the caller: it is routed to quarantine with the reason. Types that cannot be stored at
all are an error at the call site.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["bool", "int", "float", "string", "timestamp", "date", "decimal", "json"]

RESERVED_FIELDS: Final = frozenset({"ingested_at", "source_service"})

# Exact types first (the fast path); subclasses are resolved by isinstance in _kind_of.
_KIND_OF_TYPE: Final[dict[type, Kind | None]] = {
    type(None): None,
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    dt.datetime: "timestamp",
    dt.date: "date",
    decimal.Decimal: "decimal",
    uuid.UUID: "string",
    dict: "json",
    list: "json",
    tuple: "json",
}

SUPPORTED_TYPES: Final = (
    "None, bool, int, float, str, datetime, date, Decimal, UUID, or a dict/list of JSON values"
)


class UnsupportedValueError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(reason)


def kind_of_type(field: str, tp: type) -> Kind | None:
    try:
        return _KIND_OF_TYPE[tp]
    except KeyError:
        pass
    # Order matters: bool is an int, datetime is a date.
    for base in (
        bool,
        int,
        float,
        str,
        dt.datetime,
        dt.date,
        decimal.Decimal,
        uuid.UUID,
        dict,
        list,
        tuple,
    ):
        if issubclass(tp, base):
            if issubclass(tp, enum.Enum) and not issubclass(tp, (int, str)):
                break
            return _KIND_OF_TYPE[base]
    raise UnsupportedValueError(
        field, f"a value of type {tp.__name__} cannot be stored; use {SUPPORTED_TYPES}"
    )


def merge_kind(held: Kind, new: Kind) -> Kind | None:
    """The kind a column becomes when ``new`` meets ``held``; None when they conflict."""
    if held == new:
        return held
    if {held, new} == {"int", "float"}:
        return "float"  # ints widen into a float column; readers see one numeric type
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with every record of one signature; cached per (table, signature)."""

    float_fields: tuple[str, ...]  # checked per record: NaN and infinity have no JSON form
    int_fields: tuple[str, ...]  # checked per record: Parquet ints are 64-bit, JSON's are not
    json_fields: tuple[str, ...]  # nested values stored as JSON text in a string column
    conflict: str | None  # set when records of this signature go to quarantine
    shape_changes: tuple[tuple[str, Kind], ...]  # fields this signature adds or widens


def classify(
    table: str, keys: tuple[object, ...], types: tuple[type, ...], shape: Mapping[str, Kind]
) -> Verdict:
    """Decide how records with these field names and types land in ``table``.

    Raises ``UnsupportedValueError`` for what can never be stored (bad field names, types
    with no column representation); returns a conflict verdict for what this table's
    shape contradicts.
    """
    floats: list[str] = []
    ints: list[str] = []
    jsons: list[str] = []
    changes: list[tuple[str, Kind]] = []
    conflicts: list[str] = []
    for key, tp in zip(keys, types, strict=True):
        if not isinstance(key, str):
            raise UnsupportedValueError(
                repr(key), f"field names must be strings, got {type(key).__name__}"
            )
        if not key:
            raise UnsupportedValueError(key, "field names must not be empty")
        if key in RESERVED_FIELDS:
            raise UnsupportedValueError(
                key, f"field {key!r} is reserved: Strata sets it on every record"
            )
        kind = kind_of_type(key, tp)
        if kind is None:
            continue
        if kind == "float":
            floats.append(key)
        elif kind == "int":
            ints.append(key)
        elif kind == "json":
            jsons.append(key)
        held = shape.get(key)
        if held is None:
            changes.append((key, kind))
            continue
        merged = merge_kind(held, kind)
        if merged is None:
            conflicts.append(
                f"field {key!r} is {kind} here but {held} in earlier records of table {table!r}"
            )
        elif merged != held:
            changes.append((key, merged))
    # Checks apply to quarantined records too: a quarantined NaN must not become null.
    if conflicts:
        return Verdict(tuple(floats), tuple(ints), tuple(jsons), "; ".join(conflicts), ())
    return Verdict(tuple(floats), tuple(ints), tuple(jsons), None, tuple(changes))
