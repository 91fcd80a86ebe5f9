"""Data-quality results in the catalog, against a SQLite file and a fresh PostgreSQL one."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from strata.catalog import Catalog, CatalogError, RunNotFoundError
from strata.quality.evaluate import CheckResult

WORKERS = "silver.workers"


def result(
    check: str,
    tenant: str | None,
    *,
    table: str = WORKERS,
    kind: str = "row_count",
    status: str = "pass",
    severity: str = "error",
    failing: int | None = None,
    measured: float | None = None,
    samples: tuple[dict[str, Any], ...] = (),
    detail: dict[str, Any] | None = None,
) -> CheckResult:
    return CheckResult(
        table=table,
        check=check,
        kind=kind,
        tenant=tenant,
        status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        failing=failing,
        measured=measured,
        threshold=">= 1",
        message=f"{check} for {tenant}",
        samples=samples,
        detail=detail or {},
    )


def test_results_round_trip(catalog: Catalog) -> None:
    run_id = catalog.start_run("check")
    sample = {"company_id": "acme", "email": None, "score": 1.5, "day": "2026-11-22"}
    recorded = [
        result(
            "not_null_email",
            "acme",
            kind="not_null",
            status="error",
            failing=3,
            samples=(sample,),
        ),
        result("row_count", "globex", measured=12.0, detail={"baseline": 10.0, "history": 3}),
    ]
    assert catalog.record_check_results(run_id, recorded, table_version=4, published=False) == 2
    history = catalog.check_history(WORKERS)
    assert [(r.check, r.tenant) for r in history] == [
        ("row_count", "globex"),
        ("not_null_email", "acme"),
    ]
    stored = history[1]
    assert (stored.run_id, stored.table, stored.table_version, stored.published) == (
        run_id,
        WORKERS,
        4,
        False,
    )
    assert (stored.kind, stored.status, stored.severity, stored.failing, stored.measured) == (
        "not_null",
        "error",
        "error",
        3,
        None,
    )
    assert (stored.threshold, stored.message) == (">= 1", "not_null_email for acme")
    assert stored.samples == (sample,)
    assert stored.detail == {}
    assert stored.created_at.tzinfo is not None
    assert history[0].detail == {"baseline": 10.0, "history": 3}
    assert history[0].measured == 12.0
    assert history[0].id > stored.id


def test_results_without_a_run_and_an_empty_batch(catalog: Catalog) -> None:
    assert catalog.record_check_results(None, [], table_version=None, published=True) == 0
    catalog.record_check_results(
        None, [result("row_count", None)], table_version=None, published=True
    )
    [stored] = catalog.check_history(WORKERS)
    assert (stored.run_id, stored.table_version, stored.tenant, stored.published) == (
        None,
        None,
        None,
        True,
    )


def test_an_unknown_run_is_refused_and_nothing_is_written(catalog: Catalog) -> None:
    with pytest.raises(RunNotFoundError):
        catalog.record_check_results(
            "no-such-run", [result("row_count", "acme")], table_version=1, published=True
        )
    assert catalog.check_history(WORKERS) == []


def test_bad_values_are_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="check status must be one of"):
        catalog.record_check_results(
            None, [result("row_count", "acme", status="fail")], table_version=1, published=True
        )
    with pytest.raises(CatalogError, match="check severity must be one of"):
        catalog.record_check_results(
            None, [result("row_count", "acme", severity="info")], table_version=1, published=True
        )
    with pytest.raises(CatalogError, match=r"tenant must be 1\.\.64 characters, got 65"):
        catalog.record_check_results(
            None, [result("row_count", "a" * 65)], table_version=1, published=True
        )
    with pytest.raises(CatalogError, match=r"check must be 1\.\.200 characters"):
        catalog.record_check_results(
            None, [result("x" * 201, "acme")], table_version=1, published=True
        )
    assert catalog.check_history(WORKERS) == []


def record(catalog: Catalog, *results: CheckResult) -> None:
    catalog.record_check_results(None, list(results), table_version=None, published=True)


def test_recent_measures_newest_first_per_tenant(catalog: Catalog) -> None:
    for value in (1.0, 2.0, 3.0, 4.0):
        record(
            catalog,
            result("row_count", "acme", measured=value),
            result("row_count", "globex", measured=value * 10),
            result("row_count", None, measured=value * 100),
            result("row_count", "acme", table="silver.sites", measured=-value),
            result("null_rate_email", "acme", measured=value / 10),
        )
    record(catalog, result("row_count", "acme", measured=None))  # no measure: skipped
    assert catalog.recent_measures(WORKERS, "row_count", "acme", 3) == [4.0, 3.0, 2.0]
    assert catalog.recent_measures(WORKERS, "row_count", "globex", 10) == [40.0, 30.0, 20.0, 10.0]
    assert catalog.recent_measures(WORKERS, "row_count", None, 2) == [400.0, 300.0]
    assert catalog.recent_measures("silver.sites", "row_count", "acme", 1) == [-4.0]
    assert catalog.recent_measures(WORKERS, "row_count", "initech", 5) == []
    assert catalog.recent_measures(WORKERS, "nope", "acme", 5) == []


def test_non_finite_measures_are_stored_as_null(catalog: Catalog) -> None:
    record(
        catalog,
        result("drift", "acme", measured=1.0),
        result("drift", "acme", measured=math.inf, detail={"change": math.inf, "x": [math.nan]}),
        result("drift", "acme", measured=math.nan),
        result("drift", "acme", measured=-math.inf),
    )
    assert [r.measured for r in catalog.check_history(WORKERS)] == [None, None, None, 1.0]
    assert catalog.check_history(WORKERS)[2].detail == {"change": None, "x": [None]}
    assert catalog.recent_measures(WORKERS, "drift", "acme", 10) == [1.0]


def test_latest_results_are_the_newest_per_table_check_and_tenant(catalog: Catalog) -> None:
    secret = ({"company_id": "globex", "email": "ceo@globex.example"},)
    shared = ({"code": "x"},)
    record(
        catalog,
        result("not_null_email", "acme", status="error", failing=2),
        result("not_null_email", "globex", status="error", failing=1, samples=secret),
        result("schema", None, kind="schema", status="pass"),
        result("row_count", "acme", table="silver.sites", measured=1.0),
    )
    record(
        catalog,
        result("not_null_email", "acme", status="pass", failing=0),
        result("unique_code", None, kind="unique", status="error", failing=1, samples=shared),
    )
    latest = catalog.latest_check_results()
    assert [(r.table, r.check, r.tenant, r.status) for r in latest] == [
        ("silver.sites", "row_count", "acme", "pass"),
        (WORKERS, "not_null_email", "acme", "pass"),
        (WORKERS, "not_null_email", "globex", "error"),
        (WORKERS, "schema", None, "pass"),
        (WORKERS, "unique_code", None, "error"),
    ]
    assert latest[2].samples == secret  # an operator (no tenant) sees every sample
    assert latest[4].samples == shared

    acme = catalog.latest_check_results(tenant="acme")
    assert [(r.table, r.check, r.tenant) for r in acme] == [
        ("silver.sites", "row_count", "acme"),
        (WORKERS, "not_null_email", "acme"),
        (WORKERS, "schema", None),
        (WORKERS, "unique_code", None),
    ]
    assert all(r.tenant in ("acme", None) for r in acme)
    # A table-wide result shown to a tenant carries no rows: they are not that tenant's.
    assert acme[3].samples == ()
    assert "ceo@globex.example" not in repr(acme)

    globex_workers = catalog.latest_check_results(tenant="globex", table=WORKERS)
    assert [(r.check, r.tenant) for r in globex_workers] == [
        ("not_null_email", "globex"),
        ("schema", None),
        ("unique_code", None),
    ]
    assert catalog.latest_check_results(tenant="initech", table="silver.sites") == []
    assert [r.check for r in catalog.latest_check_results(table="silver.sites")] == ["row_count"]


def test_check_history_filters(catalog: Catalog) -> None:
    for value in range(5):
        record(
            catalog,
            result("row_count", "acme", measured=float(value)),
            result("row_count", "globex", measured=float(value)),
            result("not_null_email", "acme", kind="not_null", failing=value),
        )
    everything = catalog.check_history(WORKERS)
    assert len(everything) == 15
    assert [r.id for r in everything] == sorted((r.id for r in everything), reverse=True)
    acme_counts = catalog.check_history(WORKERS, check="row_count", tenant="acme")
    assert [r.measured for r in acme_counts] == [4.0, 3.0, 2.0, 1.0, 0.0]
    assert {(r.check, r.tenant) for r in acme_counts} == {("row_count", "acme")}
    assert [r.failing for r in catalog.check_history(WORKERS, check="not_null_email", limit=2)] == [
        4,
        3,
    ]
    assert {r.tenant for r in catalog.check_history(WORKERS, tenant="globex")} == {"globex"}
    assert catalog.check_history("silver.sites") == []


def test_last_schema(catalog: Catalog) -> None:
    assert catalog.last_schema(WORKERS) is None
    record(catalog, result("row_count", "acme", measured=1.0))
    assert catalog.last_schema(WORKERS) is None
    first = {"columns": {"id": "INT", "email": "TEXT"}, "drift": {}}
    second = {"columns": {"id": "BIGINT", "email": "TEXT", "phone": "TEXT"}}
    record(catalog, result("schema", None, kind="schema", detail=first))
    record(catalog, result("schema", None, kind="schema", detail=second))
    record(catalog, result("schema", None, kind="schema", table="silver.sites", detail=first))
    assert catalog.last_schema(WORKERS) == {"id": "BIGINT", "email": "TEXT", "phone": "TEXT"}
    assert catalog.last_schema("silver.sites") == {"id": "INT", "email": "TEXT"}


def test_created_at_follows_the_catalog_clock(catalog: Catalog) -> None:
    record(catalog, result("row_count", "acme"))
    [stored] = catalog.check_history(WORKERS)
    assert stored.created_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
