"""Record shapes: which kind each Python type is, when kinds merge, what a record's verdict is."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import fractions
import uuid
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.ingest.shape import (
    RESERVED_FIELDS,
    Kind,
    UnsupportedValueError,
    Verdict,
    classify,
    kind_of_type,
    merge_kind,
)

KINDS: tuple[Kind, ...] = get_args(Kind)


class Level(enum.IntEnum):
    LOW = 1


class Colour(enum.StrEnum):
    RED = "red"


class Plain(enum.Enum):
    A = 1


class Stamp(dt.datetime):
    pass


class Day(dt.date):
    pass


class Name(str):
    __slots__ = ()


class Opaque:
    pass


# Every supported type with its kind; None means "no kind yet" (the value is null).
TYPE_KINDS: dict[type, Kind | None] = {
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


# -- kind_of_type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "kind"), list(TYPE_KINDS.items()), ids=lambda v: getattr(v, "__name__", str(v))
)
def test_kind_of_each_supported_type(tp: type, kind: Kind | None) -> None:
    assert kind_of_type("f", tp) == kind


@pytest.mark.parametrize(
    ("tp", "kind"),
    [
        (Level, "int"),
        (Colour, "string"),
        (Stamp, "timestamp"),  # a datetime is a date too: the more specific kind wins
        (Day, "date"),
        (Name, "string"),
        (collections.OrderedDict, "json"),
        (collections.defaultdict, "json"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_subclasses_take_their_base_kind(tp: type, kind: Kind) -> None:
    assert kind_of_type("f", tp) == kind


@pytest.mark.parametrize(
    "tp",
    [set, frozenset, bytes, bytearray, complex, object, Opaque, Plain, fractions.Fraction, dt.time],
    ids=lambda v: v.__name__,
)
def test_unsupported_types_are_refused_naming_the_field(tp: type) -> None:
    with pytest.raises(UnsupportedValueError) as info:
        kind_of_type("payload", tp)
    assert info.value.field == "payload"
    assert f"type {tp.__name__} cannot be stored" in info.value.reason
    assert "Decimal" in info.value.reason  # the message says what would work


# -- merge_kind ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_merges_with_itself(kind: Kind) -> None:
    assert merge_kind(kind, kind) == kind


def test_int_and_float_widen_to_float_either_way() -> None:
    assert merge_kind("int", "float") == "float"
    assert merge_kind("float", "int") == "float"


@given(st.sampled_from(KINDS), st.sampled_from(KINDS))
def test_merge_kind_conflicts_exactly_when_kinds_differ_beyond_numbers(
    held: Kind, new: Kind
) -> None:
    merged = merge_kind(held, new)
    if held == new:
        assert merged == held
    elif {held, new} == {"int", "float"}:
        assert merged == "float"
    else:
        assert merged is None
    assert (merged is None) == (merge_kind(new, held) is None)


# -- classify ------------------------------------------------------------------------------


def test_a_new_table_learns_every_field_with_a_value() -> None:
    verdict = classify(
        "events",
        ("id", "score", "attrs", "note", "tags"),
        (int, float, dict, type(None), list),
        {},
    )
    assert verdict == Verdict(
        float_fields=("score",),
        int_fields=("id",),
        json_fields=("attrs", "tags"),
        conflict=None,
        shape_changes=(("id", "int"), ("score", "float"), ("attrs", "json"), ("tags", "json")),
    )


def test_a_known_shape_needs_no_changes() -> None:
    verdict = classify("events", ("id", "name"), (int, str), {"id": "int", "name": "string"})
    assert verdict == Verdict((), ("id",), (), None, ())


def test_a_float_widens_an_int_column_and_an_int_fits_a_float_column() -> None:
    widened = classify("events", ("v",), (float,), {"v": "int"})
    assert (widened.conflict, widened.shape_changes, widened.float_fields) == (
        None,
        (("v", "float"),),
        ("v",),
    )
    narrower = classify("events", ("v",), (int,), {"v": "float"})
    assert (narrower.conflict, narrower.shape_changes, narrower.float_fields) == (None, (), ())


def test_none_never_conflicts_and_teaches_nothing() -> None:
    for held in KINDS:
        assert classify("events", ("v",), (type(None),), {"v": held}) == Verdict(
            (), (), (), None, ()
        )


def test_a_conflict_names_the_field_both_kinds_and_the_table() -> None:
    verdict = classify(
        "events",
        ("id", "hours", "active", "extra"),
        (int, str, int, str),
        {"id": "int", "hours": "int", "active": "bool"},
    )
    assert verdict.conflict == (
        "field 'hours' is string here but int in earlier records of table 'events'; "
        "field 'active' is int here but bool in earlier records of table 'events'"
    )
    # A quarantined record changes nothing: not even its new, harmless fields.
    assert (verdict.float_fields, verdict.json_fields, verdict.shape_changes) == ((), (), ())


def test_bool_and_int_are_different_kinds() -> None:
    assert classify("events", ("v",), (bool,), {"v": "int"}).conflict is not None
    assert classify("events", ("v",), (int,), {"v": "bool"}).conflict is not None


@pytest.mark.parametrize("name", sorted(RESERVED_FIELDS))
def test_reserved_fields_are_refused(name: str) -> None:
    with pytest.raises(UnsupportedValueError, match="reserved") as info:
        classify("events", ("id", name), (int, str), {})
    assert info.value.field == name


@pytest.mark.parametrize(
    ("key", "field", "message"),
    [
        (1, "1", "field names must be strings, got int"),
        (None, "None", "field names must be strings, got NoneType"),
        (("a",), "('a',)", "field names must be strings, got tuple"),
        ("", "", "field names must not be empty"),
    ],
)
def test_bad_field_names_are_refused(key: object, field: str, message: str) -> None:
    with pytest.raises(UnsupportedValueError) as info:
        classify("events", (key,), (int,), {})
    assert (info.value.field, info.value.reason) == (field, message)


def test_an_unsupported_type_is_refused_even_beside_a_conflict() -> None:
    with pytest.raises(UnsupportedValueError) as info:
        classify("events", ("v", "blob"), (str, bytes), {"v": "int"})
    assert info.value.field == "blob"


def test_classify_does_not_touch_the_shape() -> None:
    shape: dict[str, Kind] = {"v": "int"}
    classify("events", ("v", "w"), (float, str), shape)
    assert shape == {"v": "int"}


# -- properties ----------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(["a", "b", "c", "d", "e", "f"])
shapes = st.dictionaries(FIELD_NAMES, st.sampled_from(KINDS), max_size=6)
records = st.dictionaries(FIELD_NAMES, st.sampled_from(list(TYPE_KINDS)), max_size=6)


@given(shapes, records)
def test_verdicts_follow_the_merge_rule(shape: dict[str, Kind], record: dict[str, type]) -> None:
    keys, types = tuple(record), tuple(record.values())
    verdict = classify("events", keys, types, shape)
    assert classify("events", keys, types, dict(shape)) == verdict  # deterministic

    kinds = {name: TYPE_KINDS[tp] for name, tp in record.items()}
    clashing = [
        name
        for name, kind in kinds.items()
        if kind is not None and name in shape and merge_kind(shape[name], kind) is None
    ]
    if clashing:
        assert verdict.conflict is not None
        for name in clashing:
            assert f"field {name!r} is {kinds[name]} here but {shape[name]}" in verdict.conflict
        assert verdict.conflict.count("; ") == len(clashing) - 1
        assert verdict.shape_changes == ()
        return

    assert verdict.conflict is None
    assert verdict.float_fields == tuple(n for n, k in kinds.items() if k == "float")
    assert verdict.json_fields == tuple(n for n, k in kinds.items() if k == "json")
    expected_changes: list[tuple[str, Any]] = []
    for name, kind in kinds.items():
        if kind is None:
            continue
        if name not in shape:
            expected_changes.append((name, kind))
        elif merge_kind(shape[name], kind) != shape[name]:
            expected_changes.append((name, "float"))
    assert list(verdict.shape_changes) == expected_changes

    # Once the shape has grown, the same signature fits it as it is.
    grown = {**shape, **dict(verdict.shape_changes)}
    again = classify("events", keys, types, grown)
    assert (again.conflict, again.shape_changes) == (None, ())


@given(shapes, records, records)
def test_shapes_only_grow(
    shape: dict[str, Kind], first: dict[str, type], second: dict[str, type]
) -> None:
    """Applying verdicts never removes a field or changes a kind other than int -> float."""
    current = dict(shape)
    for record in (first, second):
        verdict = classify("events", tuple(record), tuple(record.values()), current)
        grown = {**current, **dict(verdict.shape_changes)}
        for name, kind in current.items():
            assert grown[name] == kind or (kind, grown[name]) == ("int", "float")
        current = grown
