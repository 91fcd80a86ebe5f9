"""The crm example end to end on a real PostgreSQL: `strata extract crm` lands the source
tables as jsonl.gz parts, `strata run` builds silver and the gold fact from them, and a
second extract + run after source updates brings gold up to date without duplicates.

Follows SERVICES.md like tests/extract: with ``CI=true`` a missing server fails the test;
on a laptop without one it skips with the command that starts it.
"""

from __future__ import annotations

import collections
import decimal
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from strata.catalog.store import Catalog
from strata.cli import app
from strata.transform.tables import read_table, table_path
from support.services import PG_HOST, PG_PORT, fresh_pg_database, pg_superuser

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "crm"
Summary = dict[tuple[str, str], tuple[int, decimal.Decimal]]


@pytest.fixture
def crm_database() -> Iterator[tuple[str, str]]:
    """A fresh database seeded with the example's seed.sql: (user, database name)."""
    user = pg_superuser()
    with fresh_pg_database(user, "strata_crm") as name:
        with _connect(user, name) as conn:
            conn.execute((PROJECT / "seed.sql").read_text())
        yield user, name


def _connect(user: str, name: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname=name, autocommit=True)


def _source_summary(user: str, name: str) -> Summary:
    """Deals and their value per (region, stage), computed by PostgreSQL on the source."""
    query = """
        SELECT a.region, d.stage, count(*), sum(d.amount)
        FROM deals AS d JOIN accounts AS a ON a.id = d.account_id
        GROUP BY a.region, d.stage
    """
    with _connect(user, name) as conn:
        return {(r, s): (int(n), total) for r, s, n, total in conn.execute(query).fetchall()}


def _gold(lake: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        read_table(table_path(lake, "gold", "fct_deals")).to_table().to_pylist()
    )
    return rows


def _gold_summary(rows: list[dict[str, Any]]) -> Summary:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    totals: dict[tuple[str, str], decimal.Decimal] = collections.defaultdict(decimal.Decimal)
    for row in rows:
        key = (row["region"], row["stage"])
        counts[key] += 1
        totals[key] += row["amount"]
    return {key: (counts[key], totals[key]) for key in counts}


def _line(lake: Path, part: str, line: int) -> dict[str, Any]:
    """Line ``line`` (1-based) of a jsonl.gz part, read straight from the file."""
    with gzip.open(lake / part, "rt", encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if number == line:
                record: dict[str, Any] = json.loads(text)
                return record
    raise AssertionError(f"{part} has no line {line}")


def test_postgres_to_gold_in_one_extract_and_one_run(
    tmp_path: Path, crm_database: tuple[str, str]
) -> None:
    user, name = crm_database
    lake = tmp_path / "lake"
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = {
        "CRM_DATABASE_URL": f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}",
        "STRATA_LAKE": str(lake),
        "STRATA_CATALOG_URL": catalog_url,
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def strata(*args: str) -> None:
        result = runner.invoke(app, [*args, "--project", str(PROJECT)], env=env)
        assert result.exit_code == 0, result.output

    strata("extract", "crm")
    strata("run")

    rows = _gold(lake)
    assert len(rows) == 240
    assert len({(r["company_id"], r["deal_id"]) for r in rows}) == 240
    assert {r["company_id"] for r in rows} == {"1", "2", "3"}
    assert _gold_summary(rows) == _source_summary(user, name)
    assert sorted(lake.glob("bronze/crm/scope=main/entity=deals/*/*/part-*.jsonl.gz"))

    # The CRM changes: deals are won with a new amount, an account moves region, a deal is
    # added. Their updated_at moves past the watermark; the lookback re-reads a few rows.
    with _connect(user, name) as conn:
        conn.execute(
            "UPDATE deals SET stage = 'won', amount = amount + 1000.10, closed_on = "
            "'2025-03-01', updated_at = '2025-03-01T00:00:00Z' WHERE id IN (5, 10, 15)"
        )
        conn.execute(
            "UPDATE accounts SET region = 'central', updated_at = '2025-03-01T00:00:00Z' "
            "WHERE id = 6"
        )
        conn.execute(
            "INSERT INTO deals VALUES (241, 1, 6, 'Deal 241', 'open', 12.34, NULL, "
            "'2025-03-02T00:00:00Z')"
        )
    before = {p.relative_to(lake).as_posix() for p in lake.glob("bronze/**/part-*")}

    strata("extract", "crm")
    strata("run")

    new_parts = {p.relative_to(lake).as_posix() for p in lake.glob("bronze/**/part-*")} - before
    new_deal_parts = sorted(p for p in new_parts if "/entity=deals/" in p)
    assert new_deal_parts
    rows = _gold(lake)
    assert len(rows) == 241
    assert len({(r["company_id"], r["deal_id"]) for r in rows}) == 241
    assert _gold_summary(rows) == _source_summary(user, name)
    deal_5 = next(r for r in rows if r["deal_id"] == 5)
    assert (deal_5["stage"], deal_5["is_won"]) == ("won", True)
    assert {r["region"] for r in rows if r["account_id"] == 6} == {"central"}

    # The second run read only the new parts: silver's rows in are their lines.
    new_lines = sum(
        len(gzip.decompress((lake / p).read_bytes()).splitlines()) for p in new_deal_parts
    )
    with Catalog.open(catalog_url) as catalog:
        (transform, *_) = catalog.list_runs(kind="transform", limit=1)
        steps = {s.name: s for s in catalog.run_steps(transform.run_id)}
    assert steps["deals"].rows_in == new_lines
    assert new_lines >= 4  # 3 updates + 1 insert, plus what the lookback re-read

    # A silver row's lineage is the line of the part it was read from.
    silver = read_table(table_path(lake, "silver", "deals")).to_table().to_pylist()
    (row,) = [r for r in silver if r["deal_id"] == 10]
    assert row["_bronze_file"] in new_deal_parts
    record = _line(lake, row["_bronze_file"], row["_bronze_row"])
    assert record["id"] == 10
    assert decimal.Decimal(record["amount"]) == row["amount"]
    assert (record["stage"], record["_tenant"]) == ("won", row["company_id"])
    untouched = next(r for r in silver if r["deal_id"] == 1)
    assert untouched["_bronze_file"] not in new_parts
    assert _line(lake, untouched["_bronze_file"], untouched["_bronze_row"])["id"] == 1
