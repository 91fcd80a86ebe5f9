"""``strata run``, ``strata show`` and ``strata compile`` through the real command tree."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from strata.cli import app
from strata.lake.paths import BronzePartition
from strata.transform.scaffold import init_project
from support.profiles import PROFILE_COLUMNS

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def write_bronze(lake: Path, tenant: str, ids: list[str]) -> None:
    data: dict[str, list[object]] = {c: [None] * len(ids) for c in PROFILE_COLUMNS}
    data["id"] = list(ids)
    data["company_id"] = [tenant] * len(ids)
    data["first_name"] = [f"Name{i}" for i in ids]
    data["status"] = ["active"] * len(ids)
    table = pa.table({c: pa.array(v, pa.string()) for c, v in data.items()})
    table = table.append_column("ingested_at", pa.array([T0] * len(ids), pa.timestamp("us", "UTC")))
    rel = BronzePartition("wfm", "profiles", tenant, T0.date()).file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, lake / rel)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = init_project(tmp_path / "proj", "proj")
    write_bronze(root / "lake", "acme", ["1", "2"])
    write_bronze(root / "lake", "globex", ["3"])
    return root


def invoke(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.output


def test_run_prints_a_summary(root: Path) -> None:
    code, out = invoke("run", "--project", str(root))
    assert code == 0, out
    assert "profiles" in out
    assert "dim_workers" in out
    assert out.count("succeeded") == 2


def test_run_exits_1_when_a_model_fails(root: Path) -> None:
    (root / "models" / "gold" / "fct_bad.sql").write_text(
        "select cast(first_name as integer) as n from profiles"
    )
    (root / "models" / "gold" / "fct_bad.yml").write_text("materialized: table\n")
    code, out = invoke("run", "--project", str(root), "--select", "+fct_bad")
    assert code == 1
    assert "failed" in out
    assert "fct_bad" in out
    assert "dim_workers" not in out


def test_run_reports_a_bad_selection_as_an_error(root: Path) -> None:
    code, out = invoke("run", "--project", str(root), "--select", "dim_wrokers")
    assert code == 2
    assert "dim_workers" in out  # the suggestion


def test_show_prints_rows_filtered_by_tenant(root: Path) -> None:
    invoke("run", "--project", str(root))
    code, out = invoke("show", "dim_workers", "--project", str(root), "--tenant", "globex")
    assert code == 0, out
    assert "globex" in out
    assert "acme" not in out
    code, out = invoke(
        "show", "dim_workers", "--project", str(root), "--tenant", "acme", "--limit", "1"
    )
    assert code == 0, out
    assert out.count("acme") == 1


def test_show_before_a_run_and_unknown_model_are_errors(root: Path) -> None:
    code, out = invoke("show", "dim_workers", "--project", str(root))
    assert code == 2
    assert "no Delta table" in out
    code, out = invoke("show", "nope", "--project", str(root))
    assert code == 2
    assert "no model named 'nope'" in out


def test_compile_prints_the_sql_that_runs(root: Path) -> None:
    code, out = invoke("compile", "dim_workers", "--project", str(root))
    assert code == 0, out
    assert "__strata_model_profiles" in out
    assert "silver.profiles" not in out
    code, out = invoke("compile", "profiles", "--project", str(root))
    assert code == 0, out
    assert "ROW_NUMBER()" in out
    assert "bronze.wfm" not in out
