"""Data-quality benchmark: twenty checks on one table against one DuckDB scan of it.

Prints one JSON object. On a generated gold-like table (``--rows``, default 10 million, 20
tenants, a few hundred bad rows sprinkled in so failing checks also fetch their samples),
written as a Delta table partitioned by tenant, in one run:

- floor: one DuckDB scan of the table that decodes every value of every column the checks
  read (``sum(hash(column))`` per tenant: ``count(column)`` could be answered from Parquet
  statistics), reading the Parquet files as the checks do;
- checks: ``strata.quality.gate.check_table`` with twenty checks of every kind (row checks,
  table measures, the primary key's uniqueness and duplicates, a relationship to a dimension
  table, schema, drift), including the catalog reads drift needs and the failing rows
  sampled for the checks that fail.

Each high-cardinality key (``unique``/``duplicate_count`` on another column set) costs about
one more hash aggregate of the table; ``--extra-key`` adds one (the natural key) to show it.

Target (issue 7): checks at most 2x the floor. Timings are the best of ``--repeat`` runs,
alternating floor and checks, because the machine is noisy.

    python bench/quality.py [--rows 10000000] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from deltalake import write_deltalake

from strata.catalog import Catalog
from strata.quality.gate import check_table
from strata.quality.parse import parse_checks
from strata.transform.config import ProjectError, load_yaml
from strata.transform.tables import parquet_scan

TABLE = "gold.fct_assignments"
TENANT_KEY = "company_id"
TARGET_RATIO = 2.0

CHECKS = """\
checks:
  - not_null: assignment_id
  - not_null: worker_id
  - unique: assignment_id
  - duplicate_count: {columns: [assignment_id], max: 0}
  - accepted_values: {column: status, values: [planned, active, done, cancelled]}
  - relationships: {column: project_id, to: dim_projects, field: project_id}
  - format: {column: email, type: email, severity: warn}
  - range: {column: hours, min: 0, max: 80}
  - expression: "ends_on IS NULL OR ends_on >= starts_on"
  - row_count: {min: 1}
  - freshness: {column: updated_at, warn_after: 1d, error_after: 7d}
  - not_null: starts_on
  - null_rate: {column: ends_on, max: 0.9}
  - null_rate: {column: email, max: 0.05, name: email_null_rate}
  - distinct_count: {column: status, min: 2, max: 10}
  - schema: {columns: {assignment_id: BIGINT, company_id: VARCHAR, hours: DOUBLE}}
  - row_count_drift: {window: 7, warn: 0.1, error: 0.3}
  - null_rate_drift: {column: email, window: 7}
  - range: {column: rate, min: 0, name: rate_not_negative}
  - accepted_values: {column: shift, values: [day, night], severity: warn}
"""

COLUMNS = (
    "assignment_id",
    "company_id",
    "worker_id",
    "project_id",
    "status",
    "email",
    "hours",
    "rate",
    "shift",
    "starts_on",
    "ends_on",
    "updated_at",
)


def generate(lake: Path, rows: int, tenants: int) -> None:
    """The fact table and its project dimension, as Delta tables in ``lake``."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    fact = con.sql(
        f"""
        SELECT
            i::BIGINT AS assignment_id,
            'tenant_' || lpad((i % {tenants})::VARCHAR, 2, '0') AS company_id,
            (i // 7)::BIGINT AS worker_id,
            (i % 5000)::INTEGER AS project_id,
            CASE WHEN i % 99991 = 0 THEN 'bogus'
                 ELSE ['planned', 'active', 'done', 'cancelled'][1 + (i // 20) % 4] END AS status,
            CASE WHEN i % 50 = 0 THEN NULL WHEN i % 77777 = 0 THEN 'not-an-email'
                 ELSE 'w' || (i // 7)::VARCHAR || '@example.com' END AS email,
            CASE WHEN i % 123457 = 0 THEN 95.0 ELSE (i % 40)::DOUBLE END AS hours,
            (i % 300)::DOUBLE / 7 AS rate,
            CASE WHEN (i // 20) % 3 = 0 THEN 'night' ELSE 'day' END AS shift,
            DATE '2024-01-01' + (i % 700)::INTEGER AS starts_on,
            CASE WHEN (i // 20) % 2 = 0 THEN NULL
                 ELSE DATE '2024-01-01' + (i % 700)::INTEGER + (i % 30)::INTEGER END AS ends_on,
            now() - to_seconds((i % 86400)::BIGINT) AS updated_at
        FROM range({rows}) t(i)
        """
    )
    write_deltalake(
        str(lake / "gold" / "fct_assignments"),
        fact.to_arrow_reader(batch_size=1_000_000),
        partition_by=[TENANT_KEY],
        mode="overwrite",
    )
    projects = con.sql(
        f"SELECT 'tenant_' || lpad(t::VARCHAR, 2, '0') AS company_id, p::INTEGER AS project_id "
        f"FROM range({tenants}) a(t), range(4990) b(p)"
    ).to_arrow_table()
    write_deltalake(str(lake / "gold" / "dim_projects"), projects, partition_by=[TENANT_KEY])
    con.close()


def floor(lake: Path) -> float:
    started = time.perf_counter()
    con = duckdb.connect()
    scan = parquet_scan(lake / "gold" / "fct_assignments")
    con.execute(f"CREATE VIEW fact AS SELECT * FROM {scan}")
    measures = ", ".join(f'sum(hash("{c}"))' for c in COLUMNS)
    con.execute(f"SELECT {TENANT_KEY}, {measures} FROM fact GROUP BY 1").fetchall()
    con.close()
    return time.perf_counter() - started


def checks_run(lake: Path, catalog: Catalog, checks: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    report = check_table(TABLE, checks, lake, catalog, tenant_key=TENANT_KEY)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--extra-key", action="store_true", help="add a unique check on a compound natural key"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="strata-bench-quality-", dir=args.workdir))
    try:
        lake = work / "lake"
        started = time.perf_counter()
        generate(lake, args.rows, args.tenants)
        generate_s = time.perf_counter() - started
        problems: list[ProjectError] = []
        text = CHECKS + (
            "  - unique: [company_id, worker_id, project_id, starts_on]\n" if args.extra_key else ""
        )
        node = load_yaml(text, "bench.yml").value
        assert isinstance(node, dict)
        checks = parse_checks(
            node["checks"],
            TABLE,
            "bench.yml",
            problems,
            resolve=lambda m: f"gold.{m}",
            columns=lambda t: None,
        )
        if problems or len(checks) != 20 + args.extra_key:
            raise SystemExit(f"bad bench checks: {problems or len(checks)}")
        with Catalog.open(f"sqlite:///{work / 'catalog.db'}") as catalog:
            floors, runs = [], []
            report = None
            for _ in range(args.repeat):
                floors.append(floor(lake))
                seconds, report = checks_run(lake, catalog, checks)
                runs.append(seconds)
        assert report is not None
        best_floor, best_checks = min(floors), min(runs)
        failing = sorted({r.check for r in report.results if r.status != "pass"})
        result = {
            "rows": args.rows,
            "tenants": args.tenants,
            "checks": len(checks),
            "results": len(report.results),
            "failing_checks": failing,
            "scans": report.scans,
            "generate_s": round(generate_s, 2),
            "floor_s": [round(s, 3) for s in floors],
            "checks_s": [round(s, 3) for s in runs],
            "ratio": round(best_checks / best_floor, 2),
            "target_ratio": TARGET_RATIO,
            "meets_target": best_checks / best_floor <= TARGET_RATIO,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
