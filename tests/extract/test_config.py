"""Source declarations: parsing, ``${ENV}`` substitution, and errors located by file:line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from strata.extract.config import SourceNotFoundError, load_source
from strata.transform.config import ProjectError

GOOD = """\
name: crm
url: postgresql+psycopg://reader:${CRM_PASSWORD}@127.0.0.1:5432/crm
scope: eu1
tables:
  - entity: contacts
    table: contacts
    watermark: {column: updated_at, kind: timestamp}
    tenant_column: account_id
    primary_key: [id]
    lookback: 10m
    chunk_rows: 500
  - entity: events
    query: SELECT * FROM events
    watermark: {column: id, kind: id}
    lookback: 100
"""


def _write(tmp_path: Path, text: str, name: str = "crm.yml") -> Path:
    (tmp_path / "sources").mkdir(exist_ok=True)
    (tmp_path / "sources" / name).write_text(text)
    return tmp_path


def test_a_source_file_loads_with_env_substitution(tmp_path: Path) -> None:
    source = load_source(_write(tmp_path, GOOD), "crm", {"CRM_PASSWORD": "s3cr:t"})
    assert source.url == "postgresql+psycopg://reader:s3cr:t@127.0.0.1:5432/crm"
    assert (source.scope, source.format) == ("eu1", "jsonl.gz")
    contacts, events = source.tables
    assert contacts.lookback == dt.timedelta(minutes=10)
    assert contacts.chunk_rows == 500
    assert contacts.primary_key == ("id",)
    assert contacts.tenant_column == "account_id"
    assert events.query == "SELECT * FROM events"
    assert events.table is None
    assert (events.watermark_kind, events.lookback, events.chunk_rows) == ("id", 100, 5000)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "${CRM_PASSWORD}",
            "${MISSING_VAR}",
            "sources/crm.yml:2: url: environment variable MISSING_VAR",
        ),
        ("lookback: 10m", "lookback: soon", "sources/crm.yml:10: lookback must be a duration"),
        ("kind: timestamp}", "kind: date}", "sources/crm.yml:7: watermark.kind must be"),
        ("chunk_rows: 500", "chunk_rows: 0", "sources/crm.yml:11: chunk_rows must be a positive"),
        ("    tenant_column", "    tenant_colum", "sources/crm.yml:8: unknown key 'tenant_colum'"),
        ("    table: contacts\n", "", "sources/crm.yml:5: a table needs exactly one of"),
        ("lookback: 100", "lookback: 1h", "sources/crm.yml:15: lookback of an id watermark"),
        (
            "scope: eu1\n",
            "scope: eu1\nformat: csv\n",
            "sources/crm.yml:4: format 'csv' is not one of jsonl.gz, parquet",
        ),
        (
            "  - entity: events",
            "  - entity: contacts",
            "sources/crm.yml:12: entity 'contacts' is declared twice",
        ),
        (
            "url: postgresql",
            "base_url: postgresql",
            "sources/crm.yml:2: 'base_url' is for REST sources: add 'kind: rest'",
        ),
        ("name: crm", "name: crm\nkind: graphql", "sources/crm.yml:2: kind must be sql or rest"),
    ],
)
def test_config_errors_name_file_and_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ProjectError) as caught:
        load_source(tmp_path, "crm", {"CRM_PASSWORD": "x"})
    assert str(caught.value).startswith(expected), str(caught.value)


def test_invalid_yaml_and_unknown_source(tmp_path: Path) -> None:
    _write(tmp_path, "name: crm\n  url: [\n")
    with pytest.raises(ProjectError, match=r"^sources/crm.yml:\d+: not valid YAML"):
        load_source(tmp_path, "crm", {})
    with pytest.raises(SourceNotFoundError, match=r"no source 'erp'.*sources: crm"):
        load_source(tmp_path, "erp", {})
