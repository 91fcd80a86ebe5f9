"""The workforce example end to end: demo data landed through the SDK, then every model built."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.catalog.store import Catalog
from strata.demo.landing import land_demo
from strata.quality.gate import run_checked
from strata.transform.tables import read_table, table_path

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "workforce"


def test_the_example_project_builds_from_demo_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    land_demo(str(lake), tmp_path / "journal", seed=7, scale=0.02)
    monkeypatch.setenv("STRATA_LAKE", str(lake))
    monkeypatch.setenv("STRATA_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")

    summary = run_checked(PROJECT)

    statuses = {r.name: r.status for r in summary.results}
    assert len(statuses) == 10  # 6 silver, 4 gold (fct_worker_compliance for the metrics)
    assert set(statuses.values()) == {"succeeded"}, statuses
    workers = read_table(table_path(lake, "gold", "dim_workers")).to_table()
    tenants = set(workers.column("company_id").to_pylist())
    assert len(tenants) >= 10  # every demo tenant has workers
    assignments = read_table(table_path(lake, "gold", "fct_assignments")).to_table()
    assert assignments.num_rows > 0
    assert set(assignments.column("company_id").to_pylist()) <= tenants

    again = run_checked(PROJECT)  # nothing new landed: silver reads no files
    assert all(r.rows_in == 0 for r in again.results if r.layer == "silver")

    # The declared checks ran on every new version: errors would have blocked it; the demo's
    # malformed e-mail addresses are warnings, reported per tenant.
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        results = catalog.latest_check_results()
    assert {r.table for r in results} == {"silver.profiles", "gold.fct_assignments"}
    assert not [r for r in results if r.status == "error"]
    warned = {(r.check, r.tenant) for r in results if r.status == "warn"}
    assert any(check == "format_email" for check, _ in warned), warned
