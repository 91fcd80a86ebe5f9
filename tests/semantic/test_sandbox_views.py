"""Derived views in the tenant sandbox (explores) and the per-query timeout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from strata.semantic.explores import explore_view
from strata.semantic.sandbox import (
    DerivedViews,
    QueryTimeout,
    SandboxLimits,
    SandboxPool,
    SandboxSetupError,
    TenantSandbox,
)
from strata.semantic.tenant_tables import SandboxTable
from strata.transform.config import ExploreConfig, ExploreDimension
from strata.transform.tables import write_table

A = "acme"
B = "tenant-b7x"
EXPOSED = ["gold.dim_workers", "gold.fct_assignments"]
EXPLORE = ExploreConfig(
    "assignments",
    "fct_assignments",
    (ExploreDimension("dim_workers", ("worker_id",), ("worker_id",)),),
)
# A cross join of 3 rows 20 times over: ~3.5e9 rows, far more than any timeout here allows.
HEAVY = "select count(*) from " + ", ".join(f"gold.fct_assignments t{i}" for i in range(20))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("lake")
    facts = pa.table(
        {
            "assignment_id": [1, 2, 3, 4, 5, 6],
            "company_id": [A, A, A, B, B, B],
            "worker_id": [10, 11, 12, 10, 20, 20],
            "status": ["open", "closed", "open", "open", "open", "open"],
        }
    )
    write_table(lake / "gold" / "fct_assignments", facts, "overwrite", ["company_id"])
    workers = pa.table(
        {
            "worker_id": [10, 11, 10, 20],
            "company_id": [A, A, B, B],
            "name": ["ada", "bob", f"{B}-secret", f"{B}-other"],
            "status": ["active", "inactive", "active", "active"],
        }
    )
    write_table(lake / "gold" / "dim_workers", workers, "overwrite", ["company_id"])
    return lake


def explores(tables: Sequence[SandboxTable]) -> Mapping[str, exp.Query]:
    columns = {t.table_name: t.schema.names for t in tables}
    return {"explore.assignments": explore_view(EXPLORE, columns, "company_id")}


def test_an_explore_view_holds_only_the_tenants_joined_rows(lake: Path) -> None:
    with TenantSandbox.open(lake, EXPOSED, A, derived=explores) as sandbox:
        assert sandbox.views == ("explore.assignments",)
        rows = sandbox.run("select * from explore.assignments order by assignment_id")
    assert rows.column_names == [
        "assignment_id",
        "company_id",
        "worker_id",
        "status",
        "name",
        "dim_workers__status",
    ]
    assert rows.to_pylist()[0] == {
        "assignment_id": 1,
        "company_id": A,
        "worker_id": 10,
        "status": "open",
        "name": "ada",
        "dim_workers__status": "active",
    }
    assert [r["name"] for r in rows.to_pylist()] == ["ada", "bob", None]
    assert B not in repr(rows.to_pylist())


def test_the_pool_defines_derived_views_in_every_sandbox(lake: Path) -> None:
    with SandboxPool(lake, EXPOSED, derived=explores) as pool:
        rows = pool.run(B, "select name from explore.assignments order by assignment_id")
        assert rows.column("name").to_pylist() == [f"{B}-secret", f"{B}-other", f"{B}-other"]
        assert pool.get(A).views == ("explore.assignments",)


def _views(sql: str, name: str) -> DerivedViews:
    def derived(tables: Sequence[SandboxTable]) -> Mapping[str, exp.Query]:
        query = sqlglot.parse_one(sql, read="duckdb")
        assert isinstance(query, exp.Query)
        return {name: query}

    return derived


@pytest.mark.parametrize(
    ("sql", "name", "message"),
    [
        ("select * from read_parquet('/etc/passwd')", "explore.x", "not one of the sandbox"),
        ("select * from '/tmp/x.parquet'", "explore.x", "not one of the sandbox"),
        ("select * from dim_workers", "explore.x", "not one of the sandbox"),
        ("select * from gold.other", "explore.x", "not one of the sandbox"),
        ("select * from memory.gold.dim_workers", "explore.x", "not one of the sandbox"),
        ("select * from duckdb_settings()", "explore.x", "not one of the sandbox"),
        ("select current_setting('threads') from gold.dim_workers", "explore.x", "refused"),
        ("select * from gold.dim_workers where name = $n", "explore.x", "refused"),
        ("select * from gold.dim_workers", "gold.dim_workers", "replace an existing view"),
        ("select * from gold.dim_workers", "Explore.x", "invalid schema"),
        ("select * from gold.dim_workers", "x", "invalid view"),
    ],
)
def test_derived_views_may_only_read_the_sandboxs_views(
    lake: Path, sql: str, name: str, message: str
) -> None:
    with pytest.raises(SandboxSetupError, match=message):
        TenantSandbox.open(lake, EXPOSED, A, derived=_views(sql, name))


def test_a_derived_view_may_read_an_earlier_one(lake: Path) -> None:
    def derived(tables: Sequence[SandboxTable]) -> Mapping[str, exp.Query]:
        first = explores(tables)["explore.assignments"]
        second = sqlglot.parse_one("select count(*) as n from explore.assignments", read="duckdb")
        assert isinstance(second, exp.Query)
        return {"explore.assignments": first, "explore.counted": second}

    with TenantSandbox.open(lake, EXPOSED, A, derived=derived) as sandbox:
        assert sandbox.run("select n from explore.counted").to_pylist() == [{"n": 3}]


def test_a_query_may_shorten_the_timeout_but_not_lengthen_it(lake: Path) -> None:
    with TenantSandbox.open(lake, EXPOSED, A, limits=SandboxLimits(timeout_s=0.5)) as sandbox:
        with pytest.raises(QueryTimeout, match=r"longer than 0\.05 s"):
            sandbox.run(HEAVY, timeout_s=0.05)
        with pytest.raises(QueryTimeout, match=r"longer than 0\.5 s"):
            sandbox.run(HEAVY, timeout_s=3600)
        with pytest.raises(ValueError, match="timeout_s"):
            sandbox.run("select 1", timeout_s=0)
        assert sandbox.run("select 1 as x", timeout_s=5).to_pylist() == [{"x": 1}]
