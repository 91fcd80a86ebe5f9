"""``run_project`` over a scaffolded project: bronze Parquet, a SQLite catalog, Delta tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strata.catalog.store import Catalog
from strata.lake.paths import BronzePartition
from strata.transform.errors import MissingReferenceError, SilverRuleError
from strata.transform.runner import run_project
from strata.transform.scaffold import init_project
from strata.transform.tables import read_table, table_path

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("company_id", pa.string()),
        ("rut", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("job_title", pa.string()),
        ("status", pa.string()),
        ("hired_on", pa.string()),
        ("created_at", pa.string()),
        ("updated_at", pa.string()),
        ("deleted_at", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def profile(id_: str, company: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": company,
        "rut": "1-9",
        "first_name": f"Name{id_}",
        "last_name": "Doe",
        "email": f" W{id_}@X.COM ",
        "phone": None,
        "job_title": "driver",
        "status": status,
        "hired_on": "2024-01-02",
        "created_at": "2024-01-02 10:00:00",
        "updated_at": "2024-01-02 10:00:00",
        "deleted_at": None,
        "ingested_at": T0,
    }


def write_bronze(lake: Path, tenant: str, rows: list[dict[str, Any]]) -> None:
    rel = BronzePartition("wfm", "profiles", tenant, T0.date()).file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), lake / rel)


def make_project(tmp_path: Path) -> Path:
    root = init_project(tmp_path / "proj", "proj")
    write_bronze(root / "lake", "acme", [profile("1", "acme"), profile("2", "acme", "inactive")])
    write_bronze(root / "lake", "globex", [profile("3", "globex")])
    return root


def add_gold(root: Path, name: str, sql: str, yml: str = "materialized: table\n") -> None:
    (root / "models" / "gold" / f"{name}.sql").write_text(sql)
    (root / "models" / "gold" / f"{name}.yml").write_text(yml)


def gold_rows(root: Path, name: str) -> list[dict[str, Any]]:
    table = read_table(table_path(root / "lake", "gold", name)).to_table()
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))


def content_hash(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def test_run_builds_silver_then_gold_and_records_steps(root: Path) -> None:
    summary = run_project(root)

    assert [(r.name, r.layer, r.status) for r in summary.results] == [
        ("profiles", "silver", "succeeded"),
        ("dim_workers", "gold", "succeeded"),
    ]
    assert (summary.result("profiles").rows_in, summary.result("profiles").rows_out) == (3, 3)
    assert summary.result("dim_workers").rows_out == 3
    rows = gold_rows(root, "dim_workers")
    assert {(r["worker_id"], r["company_id"], r["is_active"]) for r in rows} == {
        ("1", "acme", True),
        ("2", "acme", False),
        ("3", "globex", True),
    }
    with Catalog.open(f"sqlite:///{root / '.strata' / 'catalog.db'}") as catalog:
        assert catalog.get_run(summary.run_id).status == "succeeded"
        steps = {s.name: (s.status, s.rows_out) for s in catalog.run_steps(summary.run_id)}
        assert steps == {"profiles": ("succeeded", 3), "dim_workers": ("succeeded", 3)}
        assert catalog.latest_table_version("gold.dim_workers") is not None


def test_second_run_reads_no_new_bronze(root: Path) -> None:
    run_project(root)
    again = run_project(root)
    assert (again.result("profiles").rows_in, again.result("profiles").rows_out) == (0, 0)
    assert again.ok
    assert len(gold_rows(root, "dim_workers")) == 3


def test_full_refresh_twice_gives_identical_gold(root: Path) -> None:
    run_project(root, full_refresh=True)
    first = content_hash(gold_rows(root, "dim_workers"))
    run_project(root, full_refresh=True)
    assert content_hash(gold_rows(root, "dim_workers")) == first


def test_tenant_partition_replaces_only_tenants_in_the_output(root: Path) -> None:
    run_project(root)
    # The model now only produces acme rows: globex's partition must be kept as it was.
    sql = (root / "models" / "gold" / "dim_workers.sql").read_text()
    (root / "models" / "gold" / "dim_workers.sql").write_text(
        sql + "where company_id = 'acme' and status = 'active'\n"
    )
    run_project(root, select="dim_workers")
    rows = gold_rows(root, "dim_workers")
    assert {(r["worker_id"], r["company_id"]) for r in rows} == {("1", "acme"), ("3", "globex")}


def test_incremental_gold_merges_on_unique_key(root: Path) -> None:
    add_gold(
        root,
        "fct_status",
        "select id, company_id, status from silver.profiles",
        "materialized: incremental\nunique_key: [company_id, id]\n",
    )
    run_project(root)
    later = profile("2", "acme", "active") | {"ingested_at": T0 + dt.timedelta(hours=1)}
    write_bronze(root / "lake", "acme", [later])
    summary = run_project(root)
    assert summary.ok
    rows = gold_rows(root, "fct_status")
    assert [(r["id"], r["status"]) for r in rows] == [
        ("1", "active"),
        ("2", "active"),
        ("3", "active"),
    ]


def test_bad_reference_fails_at_load_naming_the_model(root: Path) -> None:
    add_gold(root, "fct_oops", "select * from silver.profilez")
    with pytest.raises(MissingReferenceError, match="fct_oops"):
        run_project(root)
    assert not (root / "lake" / "silver" / "profiles").exists()  # nothing ran


def test_silver_rule_violation_aborts_before_anything_runs(root: Path) -> None:
    (root / "models" / "silver" / "counts.sql").write_text(
        "select company_id, count(*) as n from bronze.wfm.profiles group by company_id"
    )
    (root / "models" / "silver" / "counts.yml").write_text("primary_key: [company_id]\n")
    with pytest.raises(SilverRuleError, match="counts"):
        run_project(root)
    assert not (root / "lake" / "silver").exists()


def test_failing_model_skips_descendants_but_not_independent_models(root: Path) -> None:
    add_gold(root, "fct_bad", "select cast(first_name as integer) as n, company_id from profiles")
    add_gold(root, "fct_child", "select n from fct_bad")
    seen: list[str] = []

    summary = run_project(root, progress=lambda r: seen.append(r.name))

    status = {r.name: r.status for r in summary.results}
    assert status == {
        "profiles": "succeeded",
        "dim_workers": "succeeded",
        "fct_bad": "failed",
        "fct_child": "skipped",
    }
    error = summary.result("fct_bad").error or ""
    assert "fct_bad" in error
    assert "Name1" in error or "cast" in error.lower()
    assert sorted(seen) == sorted(status)
    assert not (root / "lake" / "gold" / "fct_bad").exists()
    with Catalog.open(f"sqlite:///{root / '.strata' / 'catalog.db'}") as catalog:
        assert catalog.get_run(summary.run_id).status == "failed"
        steps = {s.name: s.status for s in catalog.run_steps(summary.run_id)}
        assert steps == status


def test_selection_picks_upstream_and_layers(root: Path) -> None:
    add_gold(root, "fct_other", "select id, company_id from profiles")
    summary = run_project(root, select="+dim_workers")
    assert [r.name for r in summary.results] == ["profiles", "dim_workers"]
    assert not (root / "lake" / "gold" / "fct_other").exists()

    silver_only = run_project(root, select="layer:silver", full_refresh=True)
    assert [r.name for r in silver_only.results] == ["profiles"]

    rest = run_project(root, exclude="layer:silver")
    assert sorted(r.name for r in rest.results) == ["dim_workers", "fct_other"]
    assert rest.ok


def test_a_tenant_run_reads_and_replaces_only_that_tenant(root: Path) -> None:
    run_project(root)
    write_bronze(root / "lake", "acme", [profile("4", "acme")])
    write_bronze(root / "lake", "globex", [profile("5", "globex")])

    summary = run_project(root, tenant="acme")

    assert summary.ok
    assert summary.result("profiles").rows_in == 1  # globex's new file is not read
    workers = {(r["worker_id"], r["company_id"]) for r in gold_rows(root, "dim_workers")}
    assert workers == {("1", "acme"), ("2", "acme"), ("4", "acme"), ("3", "globex")}
    # globex's new file is still waiting for an unscoped run
    assert run_project(root).result("profiles").rows_in == 1
    assert ("5", "globex") in {
        (r["worker_id"], r["company_id"]) for r in gold_rows(root, "dim_workers")
    }


def test_a_tenant_full_refresh_rebuilds_that_tenant_and_keeps_the_others(root: Path) -> None:
    run_project(root)
    before = [r for r in gold_rows(root, "dim_workers") if r["company_id"] == "globex"]

    summary = run_project(root, tenant="acme", full_refresh=True)

    assert summary.ok
    assert summary.result("profiles").rows_in == 2
    rows = gold_rows(root, "dim_workers")
    assert [r for r in rows if r["company_id"] == "globex"] == before
    assert sorted(r["worker_id"] for r in rows if r["company_id"] == "acme") == ["1", "2"]
    silver = read_table(table_path(root / "lake", "silver", "profiles")).to_table()
    assert sorted(silver.column("id").to_pylist()) == ["1", "2", "3"]


def test_a_tenant_run_refuses_a_bad_tenant_name(root: Path) -> None:
    with pytest.raises(ValueError, match="tenant"):
        run_project(root, tenant="../globex")
