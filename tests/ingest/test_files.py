"""Reading CSV, JSON-lines and Parquet files into records for ``strata ingest``."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.errors import InvalidIdentifierError, Terminal
from strata.core.identifiers import TENANT_RULE
from strata.ingest.files import (
    FileFormatError,
    LoadedFile,
    detect_format,
    load_file,
    parse_jsonl,
    single_tenant,
    split_by_tenant,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- format detection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.CSV", "csv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("a.parquet", "parquet"),
        ("dir.v2/a.pq", "parquet"),
    ],
)
def test_format_from_extension(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


def test_explicit_format_wins_over_extension() -> None:
    assert detect_format("export.txt", "csv") == "csv"
    assert detect_format("a.csv", "jsonl") == "jsonl"


def test_unknown_extension_or_format_is_an_error() -> None:
    with pytest.raises(FileFormatError, match=r"export\.txt: cannot tell the format"):
        detect_format("export.txt")
    with pytest.raises(FileFormatError, match="unknown format 'xml'"):
        detect_format("a.csv", "xml")


def test_file_format_error_is_terminal() -> None:
    err = FileFormatError("f.csv", "bad", row=3)
    assert isinstance(err, Terminal)
    assert (err.path, err.row, err.line, str(err)) == ("f.csv", 3, None, "f.csv, row 3: bad")


# -- CSV ---------------------------------------------------------------------------------


def test_csv_keeps_inferred_types_and_empty_is_none(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        "id,name,score,ok,seen_at,born\n"
        "1,Ana,3.5,true,2024-01-02T10:00:00Z,1990-05-01\n"
        '2,"",,false,2024-01-03T11:30:00Z,1991-06-02\n',
    )
    loaded = load_file(path)
    assert loaded.fmt == "csv"
    assert loaded.lines is None
    first, second = loaded.records
    assert first == {
        "id": 1,
        "name": "Ana",
        "score": 3.5,
        "ok": True,
        "seen_at": dt.datetime(2024, 1, 2, 10, tzinfo=dt.UTC),
        "born": dt.date(1990, 5, 1),
    }
    assert second["name"] is None
    assert second["score"] is None
    assert second["ok"] is False


def test_csv_keeps_na_strings_and_quoted_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'id,note\n1,NA\n2,"two\nlines"\n')
    assert load_file(path).records == [{"id": 1, "note": "NA"}, {"id": 2, "note": "two\nlines"}]


def test_csv_time_of_day_becomes_text(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "id,at\n1,12:30:00\n")
    assert load_file(path).records == [{"id": 1, "at": "12:30:00"}]


def test_csv_bad_row_names_file_and_row(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "a,b\n1,2\n3,4\n5\n6,7\n")
    with pytest.raises(FileFormatError) as info:
        load_file(path)
    assert info.value.row == 4  # the header is row 1
    assert info.value.path == str(path)
    assert "bad.csv, row 4: expected 2 columns, got 1" in str(info.value)


def test_csv_binary_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(FileFormatError, match="column 'b' holds binary data"):
        load_file(path)


def test_empty_csv_is_an_error_but_header_only_is_no_records(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="not a readable csv file"):
        load_file(write(tmp_path / "e.csv", ""))
    assert load_file(write(tmp_path / "h.csv", "a,b\n")).records == []


# -- JSON lines -----------------------------------------------------------------------------


def test_jsonl_skips_blank_lines_and_remembers_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "r.ndjson", '{"a": 1}\n\n  \n{"a": 2, "n": {"x": [1]}}\n')
    loaded = load_file(path)
    assert loaded.records == [{"a": 1}, {"a": 2, "n": {"x": [1]}}]
    assert loaded.lines == [1, 4]


def test_jsonl_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n')
    assert load_file(path).records == [{"a": 1}, {"a": 2}]


def test_jsonl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"a": 1}\n\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(FileFormatError) as info:
        load_file(path)
    assert info.value.line == 3
    assert "bad.jsonl, line 3: invalid JSON" in str(info.value)


@pytest.mark.parametrize(("line", "got"), [("[1, 2]", "list"), ("42", "int"), ("null", "null")])
def test_jsonl_non_object_line(tmp_path: Path, line: str, got: str) -> None:
    path = write(tmp_path / "x.jsonl", f'{{"a": 1}}\n{line}\n')
    with pytest.raises(FileFormatError, match=f"line 2: expected a JSON object, got {got}"):
        load_file(path)


def test_json_array_file_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "arr.json", '[{"a": 1},\n{"a": 2}]\n')
    with pytest.raises(FileFormatError, match=r"line 1: .*write one object per line"):
        load_file(path)


records_st = st.lists(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
        max_size=5,
    ),
    max_size=20,
)


@settings(max_examples=50, deadline=None, database=None)
@given(records=records_st, blanks=st.lists(st.integers(0, 2), min_size=20, max_size=20))
def test_jsonl_round_trip(records: list[dict[str, object]], blanks: list[int]) -> None:
    lines: list[bytes] = []
    expected_lines: list[int] = []
    for record, gap in zip(records, blanks, strict=False):
        lines.extend([b""] * gap)
        lines.append(orjson.dumps(record))
        expected_lines.append(len(lines))
    stream = io.BytesIO(b"".join(line + b"\n" for line in lines))
    parsed, numbers = parse_jsonl("mem.jsonl", stream)
    assert parsed == records
    assert numbers == expected_lines


# -- Parquet -----------------------------------------------------------------------------


def test_parquet_rows_become_python_values(tmp_path: Path) -> None:
    ts = pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns", tz="UTC"))
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "at": ts,
            "tags": pa.array([["a"], []], pa.list_(pa.string())),
            "kind": pa.array(["x", "y"]).dictionary_encode(),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    loaded = load_file(path)
    assert loaded.fmt == "parquet"
    first, second = loaded.records
    # Nanoseconds are truncated to the microseconds Python datetimes (and the lake) hold.
    assert first["at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC)
    assert first["tags"] == ["a"]
    assert first["kind"] == "x"
    assert second["at"] is None


def test_corrupt_parquet_is_a_file_format_error(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(FileFormatError, match=r"c\.parquet: not a readable parquet file"):
        load_file(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no such file"):
        load_file(tmp_path / "missing.csv")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(FileFormatError, match="is a directory"):
        load_file(tmp_path / "d.csv")


# -- tenants -------------------------------------------------------------------------------


def test_split_by_tenant_keeps_order_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl",
        '{"t": "acme", "v": 1}\n{"t": 7, "v": 2}\n\n{"t": "acme", "v": 3}\n',
    )
    batches = split_by_tenant(load_file(path), "t")
    assert [b.tenant for b in batches] == ["acme", "7"]
    assert batches[0].records == [{"t": "acme", "v": 1}, {"t": "acme", "v": 3}]
    assert batches[0].positions == [0, 2]
    assert batches[1].records == [{"t": 7, "v": 2}]


def test_invalid_tenant_value_names_line_and_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", '{"t": "acme"}\n\n{"t": "Acme Corp"}\n')
    with pytest.raises(FileFormatError) as info:
        split_by_tenant(load_file(path), "t")
    assert info.value.line == 3
    assert "'Acme Corp'" in str(info.value)
    assert TENANT_RULE in str(info.value)


def test_missing_tenant_column_names_row(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "t,v\nacme,1\n,2\n")
    with pytest.raises(FileFormatError, match=r"row 3: tenant column 't' is missing or empty"):
        split_by_tenant(load_file(path), "t")
    with pytest.raises(FileFormatError, match="row 2: tenant column 'nope'"):
        split_by_tenant(load_file(path), "nope")


def test_single_tenant(tmp_path: Path) -> None:
    loaded = load_file(write(tmp_path / "s.csv", "v\n1\n2\n"))
    (batch,) = single_tenant(loaded, "acme")
    assert (batch.tenant, batch.positions) == ("acme", [0, 1])
    assert single_tenant(LoadedFile("e.csv", "csv", []), "acme") == []
    with pytest.raises(InvalidIdentifierError, match="must match"):
        single_tenant(loaded, "ACME")


def test_loaded_file_locates_records() -> None:
    assert LoadedFile("a.jsonl", "jsonl", [{}, {}], [2, 5]).error(1, "x").line == 5
    assert LoadedFile("a.csv", "csv", [{}, {}]).error(1, "x").row == 3
    assert LoadedFile("a.parquet", "parquet", [{}, {}]).error(1, "x").row == 2
