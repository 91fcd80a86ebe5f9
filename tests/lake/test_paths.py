"""The seed-000 bronze path scheme: built exactly, parsed back exactly, nothing else parsed."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core.errors import InvalidIdentifierError, Terminal
from strata.lake.paths import (
    QUARANTINE_DIR,
    BronzeFile,
    BronzePartition,
    InvalidBronzePathError,
    parse_bronze_path,
)

names = st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True)
tenants = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)
bronze_files = st.builds(
    lambda ns, table, tenant, day, q, file_id: BronzePartition(ns, table, tenant, day, q).file(
        file_id
    ),
    names,
    names,
    tenants,
    st.dates(),
    st.booleans(),
    st.uuids(),
)

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
FILE_ID = uuid.UUID("0b6f3c7e-2f4d-4e4a-9d2b-5f1a3c9e7d10")
GOOD = f"wfm/profiles/tenant=acme/year=2026/month=01/day=31/{FILE_ID}.parquet"
GOOD_Q = f"wfm/_quarantine/profiles/tenant=acme/year=2026/month=01/day=31/{FILE_ID}.parquet"


def expected_path(f: BronzeFile) -> str:
    p = f.partition
    table_dir = f"_quarantine/{p.table}" if p.quarantine else p.table
    return (
        f"{p.namespace}/{table_dir}/tenant={p.tenant}/year={p.day.year:04d}"
        f"/month={p.day.month:02d}/day={p.day.day:02d}/{f.file_id}.parquet"
    )


# -- building ------------------------------------------------------------------------------


@given(bronze_files)
def test_path_has_exactly_the_seed_000_shape(f: BronzeFile) -> None:
    p = f.partition
    assert f.path == expected_path(f)
    segments = f.path.split("/")
    head = [p.namespace, QUARANTINE_DIR, p.table] if p.quarantine else [p.namespace, p.table]
    assert segments[: len(head)] == head
    tail = segments[len(head) :]
    assert len(tail) == 5
    assert tail[0] == f"tenant={p.tenant}"
    assert re.fullmatch(r"year=\d{4}", tail[1])
    assert re.fullmatch(r"month=(0[1-9]|1[0-2])", tail[2])
    assert re.fullmatch(r"day=(0[1-9]|[12]\d|3[01])", tail[3])
    assert re.fullmatch(UUID_RE + r"\.parquet", tail[4])
    assert dt.date(int(tail[1][5:]), int(tail[2][6:]), int(tail[3][4:])) == p.day
    assert f.path == f"{p.directory}/{f.file_id}.parquet"


@given(bronze_files)
def test_parse_inverts_build(f: BronzeFile) -> None:
    parsed = parse_bronze_path(f.path)
    assert parsed == f
    assert parsed.path == f.path
    assert type(parsed.partition.tenant) is str


def test_known_paths() -> None:
    day = dt.date(2026, 1, 31)
    assert BronzePartition("wfm", "profiles", "acme", day).file(FILE_ID).path == GOOD
    assert (
        BronzePartition("wfm", "profiles", "acme", day, quarantine=True).file(FILE_ID).path
        == GOOD_Q
    )
    early = BronzePartition("wfm", "profiles", "0", dt.date(7, 3, 4)).directory
    assert early == "wfm/profiles/tenant=0/year=0007/month=03/day=04"


def test_quarantine_and_table_paths_differ_and_parse_apart() -> None:
    table, quarantined = parse_bronze_path(GOOD), parse_bronze_path(GOOD_Q)
    assert table.partition.quarantine is False
    assert quarantined.partition.quarantine is True
    assert table.partition.table == quarantined.partition.table == "profiles"
    assert table != quarantined


# -- rejecting -----------------------------------------------------------------------------

MALFORMED = [
    "",
    "/" + GOOD,  # absolute
    GOOD + "/",
    "./" + GOOD,
    GOOD.replace("tenant=", "tenants="),
    GOOD.replace("tenant=", "Tenant="),
    GOOD.replace("year=", "yr="),
    GOOD.replace("month=", "mon="),
    GOOD.replace("day=", "dd="),
    GOOD.replace("/tenant=acme", ""),
    GOOD.replace("month=01", "month=13"),
    GOOD.replace("month=01", "month=00"),
    GOOD.replace("month=01", "month=1"),
    GOOD.replace("day=31", "day=32"),
    GOOD.replace("day=31", "day=00"),
    GOOD.replace("month=01/day=31", "month=02/day=30"),
    GOOD.replace("month=01/day=31", "month=04/day=31"),
    GOOD.replace("year=2026/month=01/day=31", "year=2025/month=02/day=29"),  # not a leap year
    GOOD.replace("year=2026", "year=0000"),
    GOOD.replace("year=2026", "year=12026"),
    GOOD.replace("year=2026", "year=-026"),
    "extra/" + GOOD,
    "extra/" + GOOD_Q,
    GOOD.replace("/tenant=", "/extra/tenant="),
    GOOD.replace("/year=", "/extra/year="),
    GOOD.replace(f"/{FILE_ID}", f"/extra/{FILE_ID}"),
    GOOD + "/extra.parquet",
    GOOD.replace(str(FILE_ID), str(FILE_ID).upper()),
    GOOD.replace(str(FILE_ID), FILE_ID.hex),
    GOOD.replace(str(FILE_ID), "{" + str(FILE_ID) + "}"),
    GOOD.replace(str(FILE_ID), "not-a-uuid"),
    GOOD.removesuffix(".parquet"),
    GOOD.replace(".parquet", ".csv"),
    GOOD.replace(".parquet", ".PARQUET"),
    GOOD + ".tmp",
    GOOD.replace(f"/{FILE_ID}", f"/.{FILE_ID}") + f".{uuid.uuid4().hex}.tmp",  # a writer temp file
    GOOD + "\n",
    # invalid identifiers inside an otherwise well-formed path
    GOOD.replace("tenant=acme", "tenant=Acme"),
    GOOD.replace("tenant=acme", "tenant=_acme"),
    GOOD.replace("tenant=acme", "tenant=a.b"),
    GOOD.replace("tenant=acme", "tenant="),
    GOOD.replace("wfm/", "WFM/", 1),
    GOOD.replace("profiles", "pro-files"),
    GOOD.replace("wfm/", "../", 1),
    GOOD.replace("/profiles/", "/../"),
    GOOD.replace("/profiles/", "/_quarantine/"),  # the reserved directory is not a table
    GOOD_Q.replace("_quarantine", "_quarantined"),
    GOOD_Q.replace("/profiles/", "/_quarantine/"),
    GOOD.replace("/profiles/", "//"),
]


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidBronzePathError) as info:
        parse_bronze_path(path)
    assert info.value.path == path
    assert repr(path) in str(info.value)
    assert isinstance(info.value, Terminal)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            GOOD.replace("year=2026", "year=\u0662\u0660\u0662\u0666"), id="arabic-indic-year"
        ),
        pytest.param(GOOD.replace("day=31", "day=\uff13\uff11"), id="full-width-day"),
    ],
)
def test_non_ascii_digits_in_dates_are_rejected(path: str) -> None:
    # Python's \d matches any Unicode decimal digit and int() accepts them, so without care
    # such a path parses to a partition whose path is a *different* string.
    with pytest.raises(InvalidBronzePathError):
        parse_bronze_path(path)


@given(
    bronze_files,
    st.integers(min_value=0),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
)
def test_any_ascii_mutation_either_fails_or_is_itself_canonical(
    f: BronzeFile, at: int, char: str
) -> None:
    """Parsing is injective: a string parses only if it is exactly the path it parses to."""
    at %= len(f.path)
    mutated = f.path[:at] + char + f.path[at + 1 :]
    try:
        parsed = parse_bronze_path(mutated)
    except InvalidBronzePathError:
        return
    assert parsed.path == mutated


@given(st.text(max_size=200))
def test_arbitrary_text_either_fails_or_is_canonical(text: str) -> None:
    try:
        parsed = parse_bronze_path(text)
    except InvalidBronzePathError:
        return
    assert parsed.path == text


# -- construction --------------------------------------------------------------------------

DAY = dt.date(2026, 1, 31)


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"namespace": "WFM"}, "namespace"),
        ({"namespace": "_quarantine"}, "namespace"),
        ({"namespace": "a/b"}, "namespace"),
        ({"namespace": ""}, "namespace"),
        ({"table": "Profiles"}, "table"),
        ({"table": QUARANTINE_DIR}, "table"),
        ({"table": ".."}, "table"),
        ({"table": "a=b"}, "table"),
        ({"tenant": "Acme"}, "tenant"),
        ({"tenant": "a/b"}, "tenant"),
        ({"tenant": ".."}, "tenant"),
        ({"tenant": "tenant=x"}, "tenant"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": -1}, "tenant"),
        ({"tenant": True}, "tenant"),
    ],
)
def test_invalid_identifiers_are_rejected_at_construction(
    kwargs: dict[str, object], kind: str
) -> None:
    args: dict[str, object] = {
        "namespace": "wfm",
        "table": "profiles",
        "tenant": "acme",
        "day": DAY,
    }
    args.update(kwargs)
    with pytest.raises(InvalidIdentifierError) as info:
        BronzePartition(**args)  # type: ignore[arg-type]
    assert info.value.kind == kind


@given(
    names, names, st.text().filter(lambda s: re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", s) is None)
)
def test_any_non_tenant_string_is_rejected_at_construction(ns: str, table: str, bad: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        BronzePartition(ns, table, bad, DAY)
