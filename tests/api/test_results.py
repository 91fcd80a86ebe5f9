"""Result rendering: Accept negotiation and JSON-safe values of every DuckDB type family."""

from __future__ import annotations

import base64
import csv
import io

import duckdb
import orjson
import pyarrow as pa
import pytest

from strata.api.errors import ApiError
from strata.api.results import ARROW_TYPE, negotiate, render


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("application/json", "json"),
        ("text/csv", "csv"),
        ("TEXT/CSV; charset=utf-8", "csv"),
        (ARROW_TYPE, "arrow"),
        (f"text/csv;q=0.2, {ARROW_TYPE};q=0.8", "arrow"),
        ("text/html, text/*;q=0.5", "csv"),
        ("application/json;q=0, */*;q=0.1", "json"),
        ("text/csv;q=bogus, application/json", "json"),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize("accept", ["text/html", "image/png, application/xml", "text/csv;q=0"])
def test_negotiate_refuses(accept: str) -> None:
    with pytest.raises(ApiError) as info:
        negotiate(accept)
    assert (info.value.status, info.value.code) == (406, "not_acceptable")


SQL = """
select
    timestamptz '2024-01-02 03:04:05.123456+00' as tz,
    timestamp '2024-01-02 03:04:05' as ts,
    timestamp_ns '2024-01-02 03:04:05.123456789' as ns,
    date '2024-01-02' as d,
    time '03:04:05' as t,
    123.45::decimal(10, 2) as dec,
    170141183460469231731687303715884105727::hugeint as huge,
    '\\x00\\xff'::blob as b,
    interval 3 day as i,
    [1, 2] as l,
    {'a': 1, 'b': 'x,"y"'} as s,
    'NaN'::double as nan,
    null::integer as nul,
    true as yes
"""


@pytest.fixture(scope="module")
def table() -> pa.Table:
    con = duckdb.connect()
    try:
        return con.sql(SQL).to_arrow_table()
    finally:
        con.close()


def test_json_values(table: pa.Table) -> None:
    response = render(table, "json", truncated=True, elapsed_ms=1.23456)
    body = orjson.loads(response.body)
    assert (body["row_count"], body["truncated"], body["elapsed_ms"]) == (1, True, 1.235)
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert types["tz"] == "TIMESTAMP WITH TIME ZONE"
    assert types["dec"] == "DECIMAL(10,2)"
    row = dict(zip(types, body["rows"][0], strict=True))
    assert row == {
        "tz": "2024-01-02T03:04:05.123456+00:00",
        "ts": "2024-01-02T03:04:05",
        "ns": "2024-01-02T03:04:05.123456789",
        "d": "2024-01-02",
        "t": "03:04:05",
        "dec": "123.45",
        "huge": "170141183460469231731687303715884105727",
        "b": base64.b64encode(b"\x00\xff").decode(),
        "i": {"months": 0, "days": 3, "nanoseconds": 0},
        "l": [1, 2],
        "s": {"a": 1, "b": 'x,"y"'},
        "nan": None,
        "nul": None,
        "yes": True,
    }
    assert response.headers["x-strata-truncated"] == "true"


def test_csv_values(table: pa.Table) -> None:
    response = render(table, "csv", truncated=False, elapsed_ms=0)
    header, row = list(csv.reader(io.StringIO(response.body.decode())))
    cells = dict(zip(header, row, strict=True))
    assert cells["tz"] == "2024-01-02T03:04:05.123456+00:00"
    assert cells["dec"] == "123.45"
    assert cells["s"] == '{"a":1,"b":"x,\\"y\\""}'
    assert (cells["nul"], cells["yes"], cells["l"]) == ("", "true", "[1,2]")


def test_arrow_keeps_types(table: pa.Table) -> None:
    response = render(table, "arrow", truncated=False, elapsed_ms=0)
    read = pa.ipc.open_stream(response.body).read_all()
    assert read.schema.equals(table.schema)
    # NaN is not equal to itself, so compare the other columns.
    assert read.drop_columns(["nan"]).equals(table.drop_columns(["nan"]))


def test_a_value_python_cannot_hold_asks_for_arrow() -> None:
    nested = pa.table({"l": pa.array([[1]], pa.list_(pa.timestamp("ns")))})
    with pytest.raises(ApiError, match="ask for Arrow") as info:
        render(nested, "json", truncated=False, elapsed_ms=0)
    assert info.value.code == "result_not_renderable"
