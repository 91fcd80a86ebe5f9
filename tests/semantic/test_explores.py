"""Explore views: the SQL they generate, what DuckDB makes of it, and what they refuse."""

from __future__ import annotations

import duckdb
import pytest

from strata.semantic.explores import ExploreViewError, explore_view, explore_view_sql
from strata.semantic.guard import guard_query
from strata.transform.config import ExploreConfig, ExploreDimension

FACT = ["assignment_id", "company_id", "worker_id", "site_id", "status"]
WORKERS = ["worker_id", "company_id", "job_title", "status"]
SITES = ["id", "company_id", "region", "Job_Title"]
COLUMNS = {"fct_assignments": FACT, "dim_workers": WORKERS, "dim_sites": SITES}
WORKER_DIM = ExploreDimension("dim_workers", ("worker_id",), ("worker_id",))
SITE_DIM = ExploreDimension("dim_sites", ("site_id",), ("id",))
EXPLORE = ExploreConfig("assignments", "fct_assignments", (WORKER_DIM, SITE_DIM))


def test_golden_sql() -> None:
    explore = ExploreConfig("assignments", "fct_assignments", (WORKER_DIM,))
    assert explore_view_sql(explore, COLUMNS, "company_id") == (
        'SELECT "fct_assignments"."assignment_id" AS "assignment_id",'
        ' "fct_assignments"."company_id" AS "company_id",'
        ' "fct_assignments"."worker_id" AS "worker_id",'
        ' "fct_assignments"."site_id" AS "site_id",'
        ' "fct_assignments"."status" AS "status",'
        ' "dim_workers"."job_title" AS "job_title",'
        ' "dim_workers"."status" AS "dim_workers__status"'
        ' FROM "gold"."fct_assignments" AS "fct_assignments"'
        ' LEFT JOIN "gold"."dim_workers" AS "dim_workers"'
        ' ON "fct_assignments"."worker_id" = "dim_workers"."worker_id"'
        ' AND "fct_assignments"."company_id" = "dim_workers"."company_id"'
    )


def test_a_fact_alone_is_its_columns() -> None:
    explore = ExploreConfig("workers", "dim_workers")
    assert explore_view(explore, COLUMNS, "company_id").named_selects == WORKERS


def test_columns_keys_and_prefixes() -> None:
    names = explore_view(EXPLORE, COLUMNS, "company_id").named_selects
    # Dimension keys and the tenant key are the fact's; a clash (also by case, as DuckDB
    # sees names) gets the dimension's prefix.
    assert names == [
        *FACT,
        "job_title",
        "dim_workers__status",
        "region",
        "dim_sites__Job_Title",
    ]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema gold")
    con.execute(
        "create table gold.fct_assignments as select * from (values"
        " ('a1', 'acme', 'w1', 's1', 'open'), ('a2', 'acme', 'w2', 's1', 'closed'),"
        " ('a3', 'acme', 'w9', 's2', 'open'), ('g1', 'globex', 'w1', 's1', 'open'))"
        " t(assignment_id, company_id, worker_id, site_id, status)"
    )
    con.execute(
        "create table gold.dim_workers as select * from (values"
        " ('w1', 'acme', 'driver', 'active'), ('w2', 'acme', 'cook', 'inactive'),"
        " ('w1', 'globex', 'globex-secret-title', 'active'))"
        " t(worker_id, company_id, job_title, status)"
    )
    con.execute(
        "create table gold.dim_sites as select * from (values"
        " ('s1', 'acme', 'north', 'x'), ('s1', 'globex', 'globex-region', 'y'))"
        " t(id, company_id, region, Job_Title)"
    )
    return con


def test_the_view_joins_on_keys_and_the_tenant_key(con: duckdb.DuckDBPyConnection) -> None:
    sql = explore_view_sql(EXPLORE, COLUMNS, "company_id")
    rows = con.sql(f"{sql} order by assignment_id").fetchall()
    assert rows == [
        ("a1", "acme", "w1", "s1", "open", "driver", "active", "north", "x"),
        ("a2", "acme", "w2", "s1", "closed", "cook", "inactive", "north", "x"),
        # No matching dimension row: the fact row stays, the dimension columns are NULL.
        ("a3", "acme", "w9", "s2", "open", None, None, None, None),
        # globex's fact row never picks up acme's dimension rows, nor acme's globex's.
        ("g1", "globex", "w1", "s1", "open", "globex-secret-title", "active", "globex-region", "y"),
    ]


def test_the_guard_accepts_the_view() -> None:
    sql = explore_view_sql(EXPLORE, COLUMNS, "company_id")
    exposed = ["gold.fct_assignments", "gold.dim_workers", "gold.dim_sites"]
    guarded = guard_query(sql, exposed, max_rows=10)
    assert guarded.tables == ("gold.dim_sites", "gold.dim_workers", "gold.fct_assignments")


def test_composite_keys() -> None:
    dimension = ExploreDimension("dim_shifts", ("worker_id", "day"), ("worker", "day"))
    explore = ExploreConfig("shifts", "fct", (dimension,))
    columns = {
        "fct": ["company_id", "worker_id", "day", "hours"],
        "dim_shifts": ["company_id", "worker", "day", "kind"],
    }
    sql = explore_view_sql(explore, columns, "company_id")
    assert sql.endswith(
        'ON "fct"."worker_id" = "dim_shifts"."worker" AND "fct"."day" = "dim_shifts"."day"'
        ' AND "fct"."company_id" = "dim_shifts"."company_id"'
    )
    assert explore_view(explore, columns, "company_id").named_selects == [*columns["fct"], "kind"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"fct_assignments": FACT, "dim_sites": SITES}, "model 'dim_workers' has no table"),
        ({**COLUMNS, "fct_assignments": FACT[:1]}, "'fct_assignments' has no column 'company_id'"),
        (
            {**COLUMNS, "dim_workers": ["company_id", "x"]},
            "'dim_workers' has no column 'worker_id'",
        ),
        (
            {**COLUMNS, "fct_assignments": ["company_id", "site_id"]},
            "fact 'fct_assignments' has no column 'worker_id'",
        ),
        (
            {**COLUMNS, "fct_assignments": [*FACT, "job_title", "dim_workers__job_title"]},
            "column 'dim_workers__job_title' of 'dim_workers' is already taken",
        ),
    ],
)
def test_refusals(columns: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ExploreViewError, match=message) as info:
        explore_view(EXPLORE, columns, "company_id")
    assert info.value.explore == "assignments"
