"""Running checks on small DuckDB tables: exact failing counts per tenant, dbt semantics,
thresholds, drift against a history, samples that never cross tenants, and scan counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping

import duckdb
import pytest

# strata.transform first: see tests/quality/test_parse.py (a circular import otherwise).
import strata.transform  # noqa: F401
from strata.quality.checks import Check
from strata.quality.evaluate import CheckError, CheckResult, TableReport, run_checks
from strata.quality.parse import parse_checks
from strata.quality.plan import plan_checks
from strata.transform.config import ProjectError, load_yaml

PATH = "models/silver/workers.yml"
TABLE = "silver.workers"
TENANT = "company_id"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
MODELS = {"workers": "silver.workers", "sites": "silver.sites", "regions": "silver.regions"}


def no_columns(table: str) -> Collection[str] | None:
    return None


def checks_of(yaml_body: str, table: str = TABLE) -> list[Check]:
    """Checks from the lines under ``checks:`` (line 1), so a check's line is its own."""
    problems: list[ProjectError] = []
    root = load_yaml("checks:\n" + yaml_body, PATH)
    assert isinstance(root.value, dict)
    found = parse_checks(
        root.value["checks"], table, PATH, problems, resolve=MODELS.get, columns=no_columns
    )
    assert problems == []
    return found


class StubHistory:
    """Earlier measures per (check, tenant), newest first, and the last schema seen."""

    def __init__(
        self,
        measures: Mapping[tuple[str, str | None], list[float]] | None = None,
        schema: Mapping[str, str] | None = None,
    ) -> None:
        self.measures = dict(measures or {})
        self.schema = schema
        self.calls: list[tuple[str, str, str | None, int]] = []

    def recent_measures(
        self, table: str, check: str, tenant: str | None, limit: int
    ) -> list[float]:
        self.calls.append((table, check, tenant, limit))
        return list(self.measures.get((check, tenant), []))[:limit]

    def last_schema(self, table: str) -> Mapping[str, str] | None:
        return self.schema


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def run(
    con: duckdb.DuckDBPyConnection,
    yaml_body: str,
    relation: str = "workers",
    *,
    tenant_column: str | None = TENANT,
    **kwargs: object,
) -> TableReport:
    kwargs.setdefault("now", lambda: NOW)
    return run_checks(
        con,
        TABLE,
        checks_of(yaml_body),
        relation,
        tenant_column,
        **kwargs,  # type: ignore[arg-type]
    )


def by(report: TableReport) -> dict[tuple[str, str | None], CheckResult]:
    found = {(r.check, r.tenant): r for r in report.results}
    assert len(found) == len(report.results), "one result per check and tenant"
    return found


def failing(report: TableReport, check: str) -> dict[str | None, int | None]:
    return {r.tenant: r.failing for r in report.results if r.check == check}


def statuses(report: TableReport, check: str) -> dict[str | None, str]:
    return {r.tenant: r.status for r in report.results if r.check == check}


def measured(report: TableReport, check: str) -> dict[str | None, float | None]:
    return {r.tenant: r.measured for r in report.results if r.check == check}


WORKERS = """
CREATE TABLE workers (company_id VARCHAR, worker_id INTEGER, email VARCHAR, status VARCHAR,
                      score INTEGER, site_id INTEGER);
INSERT INTO workers VALUES
  ('acme',    1, 'a@x.com',      'active',   50,   1),
  ('acme',    1, 'a@x.com',      'bogus',    150,  2),
  ('acme',    2, 'b@x.com',      'bogus',    NULL, 3),
  ('acme',    3, NULL,           NULL,       -1,   NULL),
  ('acme',    4, 'b@x.com',      'weird',    100,  1),
  ('globex',  1, 'a@x.com',      'active',   0,    1),
  ('globex',  7, 'not-an-email', 'inactive', 10,   5),
  ('globex',  8, NULL,           'inactive', NULL, 5),
  ('globex',  9, NULL,           'x',        101,  NULL),
  ('initech', 1, 'i@x.com',      'active',   5,    7);
CREATE TABLE sites (company_id VARCHAR, site_id INTEGER, name VARCHAR);
INSERT INTO sites VALUES ('acme', 1, 'HQ'), ('acme', 2, 'Depot'), ('globex', 5, 'Main'),
                         ('initech', 1, 'Other tenant''s 1');
"""

ROW_CHECKS = """
  - not_null: email
  - unique: email
  - unique: [company_id, worker_id]
  - accepted_values: {column: status, values: [active, inactive]}
  - format: {column: email, type: email}
  - range: {column: score, min: 0, max: 100}
  - expression: "status <> 'bogus'"
  - relationships: {column: site_id, to: sites}
"""


@pytest.fixture
def workers(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute(WORKERS)
    return con


def test_row_checks_count_per_tenant_with_dbt_semantics(workers: duckdb.DuckDBPyConnection) -> None:
    report = run(workers, ROW_CHECKS, relations={"silver.sites": "sites"})
    assert report.table == TABLE
    # not_null counts rows.
    assert failing(report, "not_null_email") == {"acme": 1, "globex": 2, "initech": 0}
    # unique counts duplicated distinct values (a@x.com and b@x.com in acme), per tenant
    # (a@x.com in acme and globex is no duplicate), and NULLs (two in globex) pass.
    assert failing(report, "unique_email") == {"acme": 2, "globex": 0, "initech": 0}
    assert failing(report, "unique_company_id_worker_id") == {"acme": 1, "globex": 0, "initech": 0}
    # accepted_values counts distinct values: bogus (twice) and weird; NULL passes.
    assert failing(report, "accepted_values_status") == {"acme": 2, "globex": 1, "initech": 0}
    # format and range count rows; NULLs pass; the bounds are inclusive (0 and 100 pass).
    assert failing(report, "format_email") == {"acme": 0, "globex": 1, "initech": 0}
    assert failing(report, "range_score") == {"acme": 2, "globex": 1, "initech": 0}
    # expression counts rows where it is false; NULL (status NULL) passes.
    assert failing(report, "expression_7") == {"acme": 2, "globex": 0, "initech": 0}
    # relationships counts rows whose key is missing for the same tenant: acme's site 3,
    # globex's site 1 (acme has a site 1, globex has not), initech's 7; NULL passes.
    relationship = "relationships_site_id__silver_sites"
    assert failing(report, relationship) == {"acme": 1, "globex": 1, "initech": 1}
    assert statuses(report, "not_null_email") == {
        "acme": "error",
        "globex": "error",
        "initech": "pass",
    }
    result = by(report)[("unique_email", "acme")]
    assert (result.kind, result.severity, result.measured) == ("unique", "error", None)
    assert result.threshold == "<= 0 failing distinct values"
    assert result.message == "2 failing distinct values"
    assert by(report)[("not_null_email", "initech")].message == "no failing rows"
    assert by(report)[(relationship, "acme")].threshold == "<= 0 failing rows"
    assert [r.tenant for r in report.results[:3]] == ["acme", "globex", "initech"]
    assert report.scans == 3  # aggregates, unique (both keys), one anti join


def test_relationships_ignore_tenants_when_the_parent_has_no_tenant_column(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute(
        "CREATE TABLE workers (company_id VARCHAR, region VARCHAR);"
        "INSERT INTO workers VALUES ('acme', 'eu'), ('acme', 'mars'), ('globex', 'us'),"
        " ('globex', NULL), ('globex', 'moon');"
        "CREATE TABLE regions (code VARCHAR); INSERT INTO regions VALUES ('eu'), ('us');"
    )
    report = run(
        con,
        "  - relationships: {column: region, to: regions, field: code, max_failures: 1}\n",
        relations={"silver.regions": "regions", "silver.unused": "no_such_relation"},
    )
    name = "relationships_region__silver_regions"
    assert failing(report, name) == {"acme": 1, "globex": 1}
    assert statuses(report, name) == {"acme": "pass", "globex": "pass"}  # max_failures: 1


def test_unique_values_counted_once_however_often_they_repeat(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute(
        "CREATE TABLE workers AS SELECT * FROM (VALUES ('acme', 'x', 1), ('acme', 'x', 1),"
        " ('acme', 'x', 2), ('acme', 'y', NULL), ('acme', 'y', NULL), ('acme', NULL, 3),"
        " ('acme', NULL, 3), ('acme', 'z', 4)) t(company_id, a, b)"
    )
    report = run(
        con,
        "  - unique: a\n"
        "  - unique: [a, b]\n"
        "  - unique: {columns: [b, a], name: unique_b_a}\n"  # the same key, another order
        "  - duplicate_count: a\n"
        "  - duplicate_count: {columns: [a, b], max: 1}\n",
    )
    assert failing(report, "unique_a") == {"acme": 2}  # x (3 rows), y (2); NULLs pass
    # (x, 1) twice; (y, NULL) and (NULL, 3) have a NULL part: they pass.
    assert failing(report, "unique_a_b") == {"acme": 1}
    assert failing(report, "unique_b_a") == {"acme": 1}
    # duplicate_count counts rows beyond the first of each key, NULL keys not counted.
    assert measured(report, "duplicate_count_a") == {"acme": 3.0}
    assert statuses(report, "duplicate_count_a") == {"acme": "error"}
    assert measured(report, "duplicate_count_a_b") == {"acme": 1.0}
    assert statuses(report, "duplicate_count_a_b") == {"acme": "pass"}
    assert by(report)[("duplicate_count_a", "acme")].message == ("3 duplicate rows, expected <= 0")
    assert report.scans == 2


def test_unique_on_the_tenant_column_itself(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE workers AS SELECT * FROM (VALUES ('acme', 1), ('acme', 1), ('globex', 3),"
        " ('globex', 4)) t(company_id, setting)"
    )
    report = run(con, "  - unique: company_id\n  - unique: setting\n")
    assert failing(report, "unique_company_id") == {"acme": 1, "globex": 1}
    assert failing(report, "unique_setting") == {"acme": 1, "globex": 0}


def test_accepted_values_of_integers_booleans_doubles_and_decimals(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute(
        "CREATE TABLE workers (company_id VARCHAR, level INTEGER, active BOOLEAN, ratio DOUBLE,"
        " price DECIMAL(10, 2), code VARCHAR);"
        "INSERT INTO workers VALUES"
        " ('acme', 1, true, 1.0, 1.50, '1'),"
        " ('acme', 2, false, 2.0, 2.00, 'abc'),"
        " ('acme', 3, NULL, 3.5, 9.99, '2.0'),"
        " ('acme', 3, true, NULL, NULL, NULL),"
        " ('acme', NULL, true, 1.0, 1.5, '01')"
    )
    report = run(
        con,
        "  - accepted_values: {column: level, values: [1, 2]}\n"
        "  - accepted_values: {column: active, values: [true]}\n"
        "  - accepted_values: {column: ratio, values: [1, 2]}\n"
        "  - accepted_values: {column: price, values: [1.5, 2]}\n"
        "  - accepted_values: {column: code, values: [1, 2]}\n"
        "  - accepted_values: {column: code, values: ['1', abc], name: code_as_text}\n",
    )
    assert failing(report, "accepted_values_level") == {"acme": 1}  # 3 (twice): one value
    assert failing(report, "accepted_values_active") == {"acme": 1}  # false; NULL passes
    assert failing(report, "accepted_values_ratio") == {"acme": 1}  # 3.5; 1.0 is 1
    assert failing(report, "accepted_values_price") == {"acme": 1}  # 9.99; 1.50 is 1.5
    # Text that reads as an accepted number is accepted ('01', '2.0'); 'abc' is not.
    assert failing(report, "accepted_values_code") == {"acme": 1}
    assert failing(report, "code_as_text") == {"acme": 2}  # '2.0' and '01'


def test_where_filters_each_check_and_a_filtered_unique_gets_its_own_scan(
    workers: duckdb.DuckDBPyConnection,
) -> None:
    report = run(
        workers,
        "  - not_null: {column: email, where: \"status = 'inactive'\"}\n"
        "  - unique: {column: email, where: \"status = 'bogus'\", name: bogus_email_unique}\n"
        "  - unique: email\n"
        "  - accepted_values: {column: status, values: [active], where: 'score > 20'}\n"
        "  - range: {column: score, max: 100, where: 'worker_id > 1'}\n"
        "  - row_count: {min: 2, where: 'score >= 10'}\n"
        "  - null_rate: {column: email, max: 0.4, where: 'worker_id > 1'}\n"
        "  - distinct_count: {column: status, min: 2, where: \"email LIKE '%x.com'\"}\n"
        "  - duplicate_count: {columns: [email], where: 'worker_id <> 4'}\n"
        "  - relationships: {column: site_id, to: sites, where: 'worker_id > 1'}\n",
        relations={"silver.sites": "sites"},
    )
    assert failing(report, "not_null_email") == {"acme": 0, "globex": 1, "initech": 0}
    # Among bogus rows only: a@x.com once, b@x.com once.
    assert failing(report, "bogus_email_unique") == {"acme": 0, "globex": 0, "initech": 0}
    assert failing(report, "unique_email") == {"acme": 2, "globex": 0, "initech": 0}
    # score > 20: acme active, bogus(150), weird(100); globex x(101).
    assert failing(report, "accepted_values_status") == {"acme": 2, "globex": 1, "initech": 0}
    # worker_id > 1: acme none above 100 (150 is worker 1), globex 101.
    assert failing(report, "range_score") == {"acme": 0, "globex": 1, "initech": 0}
    assert measured(report, "row_count") == {"acme": 3.0, "globex": 2.0, "initech": 0.0}
    assert statuses(report, "row_count") == {"acme": "pass", "globex": "pass", "initech": "error"}
    # worker_id > 1: acme 1 NULL of 3, globex 2 of 3, initech none of 0 rows.
    assert measured(report, "null_rate_email") == pytest.approx(
        {"acme": 1 / 3, "globex": 2 / 3, "initech": 0.0}
    )
    assert statuses(report, "null_rate_email") == {
        "acme": "pass",
        "globex": "error",
        "initech": "pass",
    }
    assert measured(report, "distinct_count_status") == {"acme": 3.0, "globex": 1.0, "initech": 1.0}
    # worker 4 (the second b@x.com) left out: a@x.com twice in acme.
    assert measured(report, "duplicate_count_email") == {"acme": 1.0, "globex": 0.0, "initech": 0.0}
    # worker_id > 1: acme's site 3; globex's site 1 is worker 1, filtered out.
    relationship = "relationships_site_id__silver_sites"
    assert failing(report, relationship) == {"acme": 1, "globex": 0, "initech": 0}
    # aggregates, shared key scan, filtered unique, filtered duplicate_count, filtered
    # distinct_count, anti join (failing values and samples come on top, only on failure)
    assert report.scans == 6
    # A filter naming a column both tables have means the checked table's.
    both = run(
        workers,
        "  - relationships: {column: site_id, to: sites, where: \"company_id <> 'acme'\"}\n",
        relations={"silver.sites": "sites"},
    )
    assert failing(both, relationship) == {"acme": 0, "globex": 1, "initech": 1}
    assert [s["worker_id"] for s in by(both)[(relationship, "globex")].samples] == [1]


# -- table measures ------------------------------------------------------------------------


@pytest.mark.parametrize("column_type", ["TIMESTAMP", "TIMESTAMPTZ"])
def test_freshness_warn_and_error_ages(con: duckdb.DuckDBPyConnection, column_type: str) -> None:
    con.execute(
        f"CREATE TABLE workers (company_id VARCHAR, updated_at {column_type});"
        "INSERT INTO workers VALUES"
        " ('acme', '2026-11-22 06:00:00'), ('acme', '2026-11-01 00:00:00'),"
        " ('globex', '2026-11-21 20:00:00'),"
        " ('initech', '2026-11-21 06:00:00'),"
        " ('umbrella', NULL)"
    )
    report = run(con, "  - freshness: {column: updated_at, warn_after: 12h, error_after: 24h}\n")
    name = "freshness_updated_at"
    assert measured(report, name) == {
        "acme": 6 * 3600.0,
        "globex": 16 * 3600.0,
        "initech": 30 * 3600.0,
        "umbrella": None,
    }
    assert statuses(report, name) == {
        "acme": "pass",
        "globex": "warn",
        "initech": "error",
        "umbrella": "error",  # no timestamps at all: as stale as can be
    }
    result = by(report)[(name, "initech")]
    assert result.threshold == "warn after 12.0h, error after 1.0d"
    assert result.message == "newest updated_at is 1.2d old"
    assert by(report)[(name, "umbrella")].message == "no updated_at values to judge freshness"


def test_freshness_of_timestamptz_in_another_zone_and_of_dates(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute(
        "CREATE TABLE workers (company_id VARCHAR, seen_at TIMESTAMPTZ, day DATE);"
        "INSERT INTO workers VALUES"
        " ('acme', '2026-11-22 08:00:00+02', '2026-11-22'),"
        " ('globex', '2026-11-22 08:00:00-02', '2026-11-20'),"
        " ('initech', '2026-11-21 12:00:00+00', '2026-11-18')"
    )
    report = run(
        con,
        "  - freshness: {column: seen_at, warn_after: 5h}\n"
        "  - freshness: {column: day, warn_after: 1d, error_after: 3d}\n",
    )
    assert measured(report, "freshness_seen_at") == {
        "acme": 6 * 3600.0,
        "globex": 2 * 3600.0,
        "initech": 86400.0,
    }
    assert statuses(report, "freshness_seen_at") == {
        "acme": "warn",
        "globex": "pass",
        "initech": "warn",
    }
    # A date is its midnight UTC.
    assert measured(report, "freshness_day") == {
        "acme": 12 * 3600.0,
        "globex": 2.5 * 86400,
        "initech": 4.5 * 86400,
    }
    assert statuses(report, "freshness_day") == {
        "acme": "pass",
        "globex": "warn",
        "initech": "error",
    }


def test_freshness_with_a_naive_clock_and_a_filter(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE workers AS SELECT * FROM (VALUES"
        " ('acme', TIMESTAMP '2026-11-22 11:00:00', 'old'),"
        " ('acme', TIMESTAMP '2026-11-20 12:00:00', 'new')) t(company_id, seen_at, kind)"
    )
    report = run(
        con,
        "  - freshness: {column: seen_at, error_after: 1d, where: \"kind = 'new'\"}\n",
        now=lambda: dt.datetime(2026, 11, 22, 12, 0),  # naive: read as UTC
    )
    assert measured(report, "freshness_seen_at") == {"acme": 2 * 86400.0}
    assert statuses(report, "freshness_seen_at") == {"acme": "error"}


def test_null_rate_and_distinct_count(workers: duckdb.DuckDBPyConnection) -> None:
    report = run(
        workers,
        "  - null_rate: {column: email, max: 0.2}\n"
        "  - distinct_count: {column: status, min: 2, max: 3}\n",
    )
    assert measured(report, "null_rate_email") == {"acme": 0.2, "globex": 0.5, "initech": 0.0}
    assert statuses(report, "null_rate_email") == {
        "acme": "pass",
        "globex": "error",
        "initech": "pass",
    }
    assert by(report)[("null_rate_email", "globex")].message == "0.5 NULL share, expected <= 0.2"
    # NULL is no value: acme has active, bogus, weird.
    assert measured(report, "distinct_count_status") == {"acme": 3.0, "globex": 3.0, "initech": 1.0}
    assert statuses(report, "distinct_count_status") == {
        "acme": "pass",
        "globex": "pass",
        "initech": "error",
    }
    assert by(report)[("distinct_count_status", "initech")].threshold == "between 2 and 3"


def test_an_empty_table_gives_one_result_per_check(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE workers (company_id VARCHAR, email VARCHAR, seen_at TIMESTAMP)")
    report = run(
        con,
        "  - row_count: {min: 1}\n"
        "  - not_null: email\n"
        "  - unique: email\n"
        "  - null_rate: {column: email, max: 0.1}\n"
        "  - freshness: {column: seen_at, warn_after: 1h}\n",
    )
    results = by(report)
    assert set(results) == {
        ("row_count", None),
        ("not_null_email", None),
        ("unique_email", None),
        ("null_rate_email", None),
        ("freshness_seen_at", None),
    }
    row_count = results[("row_count", None)]
    assert (row_count.status, row_count.measured, row_count.failing) == ("error", 0.0, None)
    assert row_count.message == "0 rows, expected >= 1"
    assert results[("not_null_email", None)].status == "pass"
    assert results[("null_rate_email", None)].measured == 0.0
    assert results[("freshness_seen_at", None)].status == "warn"  # only warn_after is set
    assert [r.check for r in report.errors] == ["row_count"]
    assert [r.check for r in report.warnings] == ["freshness_seen_at"]


def test_a_table_without_the_tenant_column_is_checked_whole(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute("CREATE TABLE codes AS SELECT * FROM (VALUES ('a'), ('a'), (NULL)) t(code)")
    report = run(
        con,
        "  - not_null: code\n  - unique: code\n  - row_count: {max: 2}\n",
        relation="codes",
    )
    assert failing(report, "not_null_code") == {None: 1}
    assert failing(report, "unique_code") == {None: 1}
    assert measured(report, "row_count") == {None: 3.0}
    assert by(report)[("not_null_code", None)].samples == ({"code": None},)
    assert len(by(report)[("unique_code", None)].samples) == 2
    no_tenant = run(con, "  - row_count: {min: 1}\n", relation="codes", tenant_column=None)
    assert measured(no_tenant, "row_count") == {None: 3.0}


# -- schema --------------------------------------------------------------------------------

SCHEMA_TABLE = (
    "CREATE TABLE workers (company_id VARCHAR, worker_id BIGINT, email VARCHAR,"
    " joined TIMESTAMPTZ, score DECIMAL(10, 2)); INSERT INTO workers VALUES"
    " ('acme', 1, 'a', NULL, 1.0), ('globex', 2, 'b', NULL, 2.0)"
)


def test_schema_as_declared(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_TABLE)
    report = run(
        con,
        "  - schema:\n"
        "      columns: {company_id: TEXT, worker_id: BIGINT, email: STRING,"
        " joined: TIMESTAMP WITH TIME ZONE, score: 'DECIMAL(10,2)'}\n"
        "      allow_extra: false\n",
    )
    [result] = report.results
    assert (result.tenant, result.status, result.failing) == (None, "pass", 0)
    assert result.message == "5 columns as expected"
    assert result.threshold == "5 declared column(s), no others"
    assert result.detail["columns"] == {
        "company_id": "TEXT",
        "worker_id": "BIGINT",
        "email": "TEXT",
        "joined": "TIMESTAMPTZ",
        "score": "DECIMAL(10, 2)",
    }
    assert result.detail["drift"] == {"added": [], "removed": [], "changed": []}


def test_schema_missing_changed_and_unexpected(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_TABLE)
    report = run(
        con,
        "  - schema:\n"
        "      columns: {company_id: VARCHAR, worker_id: INTEGER, phone: VARCHAR}\n"
        "      allow_extra: false\n"
        "      severity: warn\n",
    )
    [result] = report.results
    assert (result.status, result.severity, result.failing) == ("warn", "warn", 5)
    assert result.detail["missing"] == ["phone"]
    assert result.detail["changed"] == {"worker_id": {"expected": "INT", "actual": "BIGINT"}}
    assert result.detail["unexpected"] == ["email", "joined", "score"]
    assert result.message == (
        "missing phone; type of worker_id is BIGINT, expected INT; unexpected email, joined, score"
    )
    extra_allowed = run(con, "  - schema: {columns: {phone: VARCHAR}}\n")
    [allowed] = extra_allowed.results
    assert (allowed.status, allowed.failing, allowed.message) == ("error", 1, "missing phone")
    assert allowed.detail["unexpected"] == []


def test_schema_drift_against_the_last_schema_seen(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_TABLE)
    previous = {
        "company_id": "TEXT",
        "worker_id": "INT",  # now BIGINT
        "email": "TEXT",
        "score": "DECIMAL(10, 2)",
        "phone": "TEXT",  # since removed
    }  # and joined has been added
    report = run(
        con, "  - schema: {columns: {email: VARCHAR}}\n", history=StubHistory(schema=previous)
    )
    [result] = report.results
    assert result.status == "warn"  # drift is reported, not blocking
    assert result.detail["drift"] == {
        "added": ["joined"],
        "removed": ["phone"],
        "changed": ["worker_id"],
    }
    assert result.message == (
        "since the last check: added joined; since the last check: removed phone; "
        "since the last check: changed worker_id"
    )
    same = dict(result.detail["columns"])
    unchanged = run(
        con, "  - schema: {columns: {email: VARCHAR}}\n", history=StubHistory(schema=same)
    )
    assert unchanged.results[0].status == "pass"


# -- drift ---------------------------------------------------------------------------------


def counted_table(con: duckdb.DuckDBPyConnection, rows: Mapping[str, tuple[int, int]]) -> None:
    """A table with, per tenant, (rows, of which email NULL)."""
    con.execute("CREATE TABLE workers (company_id VARCHAR, email VARCHAR)")
    for tenant, (count, nulls) in rows.items():
        con.execute(
            "INSERT INTO workers SELECT ?, CASE WHEN i < ? THEN NULL ELSE 'e' || i END"
            " FROM range(?) r(i)",
            [tenant, nulls, count],
        )


def test_row_count_drift_against_the_median_of_the_history(
    con: duckdb.DuckDBPyConnection,
) -> None:
    counted_table(
        con,
        {
            "acme": (110, 0),  # +10%: warn
            "globex": (70, 0),  # -30%: error
            "initech": (95, 0),  # -5%: pass
            "umbrella": (5, 0),  # too little history: pass
            "hooli": (3, 0),  # from 0: error
            "wonka": (108, 0),  # median 100 (of 90, 100, 5000): +8%: pass
        },
    )
    check = "row_count_drift"
    history = StubHistory(
        {
            (check, "acme"): [100.0, 100.0, 100.0],
            (check, "globex"): [100.0, 100.0, 100.0, 100.0],
            (check, "initech"): [100.0, 100.0, 100.0],
            (check, "umbrella"): [100.0, 100.0],
            (check, "hooli"): [0.0, 0.0, 0.0],
            (check, "wonka"): [90.0, 5000.0, 100.0],
        }
    )
    report = run(con, "  - row_count_drift: {window: 5}\n", history=history)
    assert statuses(report, check) == {
        "acme": "warn",
        "globex": "error",
        "hooli": "error",
        "initech": "pass",
        "umbrella": "pass",
        "wonka": "pass",
    }
    assert measured(report, check)["acme"] == 110.0
    results = by(report)
    assert (
        results[(check, "acme")].message == "110 against a median of 100 over 3 runs (10% change)"
    )
    assert results[(check, "acme")].detail == {
        "baseline": 100.0,
        "change": pytest.approx(0.1),
        "history": 3,
    }
    assert results[(check, "acme")].threshold == "warn at 10% change, error at 30%"
    assert results[(check, "umbrella")].message == (
        "5 measured; 2 of 3 earlier runs needed to judge drift"
    )
    assert results[(check, "hooli")].message == (
        "3 against a median of 0 over 3 runs (infinite change)"
    )
    assert results[(check, "hooli")].detail["change"] is None
    # Asked per table, check and tenant, for the window's worth of runs.
    assert ("silver.workers", check, "acme", 5) in history.calls
    assert {call[2] for call in history.calls} == {
        "acme",
        "globex",
        "hooli",
        "initech",
        "umbrella",
        "wonka",
    }


def test_row_count_drift_thresholds_are_configurable_and_zero_stays_zero(
    con: duckdb.DuckDBPyConnection,
) -> None:
    counted_table(con, {"acme": (150, 0), "globex": (0, 0)})
    history = StubHistory({("big_moves", "acme"): [100.0] * 3})
    report = run(
        con,
        "  - row_count_drift: {name: big_moves, warn: 0.5, error: 1.0, window: 3}\n",
        history=history,
    )
    assert statuses(report, "big_moves") == {"acme": "warn"}
    assert by(report)[("big_moves", "acme")].threshold == "warn at 50% change, error at 100%"
    empty = StubHistory({("row_count_drift", None): [0.0] * 3})
    con.execute("DELETE FROM workers")
    zero = run(con, "  - row_count_drift:\n", history=empty)
    assert by(zero)[("row_count_drift", None)].status == "pass"  # 0 against 0: no change


def test_null_rate_drift_is_an_absolute_change(con: duckdb.DuckDBPyConnection) -> None:
    counted_table(con, {"acme": (10, 3), "globex": (10, 5), "initech": (10, 2)})
    check = "null_rate_drift_email"
    history = StubHistory(
        {(check, tenant): [0.2, 0.2, 0.2] for tenant in ("acme", "globex", "initech")}
    )
    report = run(con, "  - null_rate_drift: email\n", history=history)
    # 0.3 - 0.2 is exactly the 10% warn threshold, though floats make it 0.0999...
    assert statuses(report, check) == {"acme": "warn", "globex": "error", "initech": "pass"}
    assert measured(report, check) == pytest.approx({"acme": 0.3, "globex": 0.5, "initech": 0.2})


def test_severity_warn_caps_the_status(workers: duckdb.DuckDBPyConnection) -> None:
    con = workers
    history = StubHistory({("drift", "acme"): [1000.0] * 3})
    report = run(
        con,
        "  - not_null: {column: email, severity: warn}\n"
        "  - row_count_drift: {name: drift, severity: warn}\n"
        "  - range: {column: score, max: 10, severity: warn}\n"
        "  - row_count: {min: 2, severity: warn}\n",
        history=history,
    )
    assert statuses(report, "not_null_email") == {
        "acme": "warn",
        "globex": "warn",
        "initech": "pass",
    }
    assert statuses(report, "drift")["acme"] == "warn"  # 5 against 1000
    assert statuses(report, "range_score")["acme"] == "warn"
    assert statuses(report, "row_count")["initech"] == "warn"
    assert report.errors == ()
    assert {r.severity for r in report.results} == {"warn"}


# -- samples -------------------------------------------------------------------------------


def test_samples_hold_only_their_tenants_rows_and_at_most_three(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute(
        "CREATE TABLE workers AS SELECT"
        " CASE WHEN i % 3 = 0 THEN 'acme' WHEN i % 3 = 1 THEN 'globex' ELSE 'initech' END"
        " AS company_id, i AS worker_id,"
        " CASE WHEN i < 12 AND i % 3 <> 2 THEN NULL ELSE 'e' || (i % 4) END AS email,"
        " repeat('x', 500) AS notes FROM range(30) r(i)"
    )
    report = run(
        con,
        "  - not_null: email\n"
        "  - unique: {column: email, severity: warn}\n"
        "  - row_count: {max: 1}\n",
    )
    results = by(report)
    assert failing(report, "not_null_email") == {"acme": 4, "globex": 4, "initech": 0}
    for tenant in ("acme", "globex"):
        samples = results[("not_null_email", tenant)].samples
        assert len(samples) == 3
        assert {s["company_id"] for s in samples} == {tenant}
        assert all(s["email"] is None for s in samples)
        assert all(len(s["notes"]) == 200 for s in samples)  # long text cut
    assert results[("not_null_email", "initech")].samples == ()  # passing: none
    for tenant in ("acme", "globex", "initech"):
        unique = results[("unique_email", tenant)]
        assert unique.status == "warn"
        assert 0 < len(unique.samples) <= 3
        assert {s["company_id"] for s in unique.samples} == {tenant}
    assert results[("row_count", "acme")].samples == ()  # table measures carry none
    # A tenant within max_failures passes and shows no rows, whoever else fails.
    tolerant = by(run(con, "  - not_null: {column: email, max_failures: 4}\n"))
    assert tolerant[("not_null_email", "acme")].status == "pass"
    assert tolerant[("not_null_email", "acme")].samples == ()
    none = run(con, "  - not_null: email\n", sample_limit=0)
    assert all(r.samples == () for r in none.results)


def test_samples_of_relationships_and_accepted_values(workers: duckdb.DuckDBPyConnection) -> None:
    report = run(workers, ROW_CHECKS, relations={"silver.sites": "sites"})
    results = by(report)
    orphans = results[("relationships_site_id__silver_sites", "globex")].samples
    assert [(s["company_id"], s["worker_id"], s["site_id"]) for s in orphans] == [("globex", 1, 1)]
    values = results[("accepted_values_status", "acme")].samples
    assert sorted(s["status"] for s in values) == ["bogus", "bogus", "weird"]
    assert results[("unique_company_id_worker_id", "globex")].samples == ()


# -- problems ------------------------------------------------------------------------------


def test_a_check_on_a_missing_column_names_the_check_its_location_and_the_column(
    workers: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(CheckError) as caught:
        run(workers, "  - row_count: {min: 1}\n  - not_null: phone\n")
    assert str(caught.value) == (
        f"{PATH}:3: check 'not_null_phone' on silver.workers: no column 'phone' in the table "
        "(columns: company_id, email, score, site_id, status, worker_id)"
    )
    with pytest.raises(CheckError, match=rf"^{PATH}:2: check 'expression_1' .* no column 'bonus'"):
        run(workers, "  - expression: 'bonus > 0'\n")
    with pytest.raises(CheckError, match=rf"^{PATH}:2: check 'row_count' .* no column 'region'"):
        run(workers, "  - row_count: {min: 1, where: \"region = 'eu'\"}\n")


def test_column_names_match_case_insensitively_like_duckdb(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute("CREATE TABLE workers AS SELECT 'acme' AS company_id, NULL::VARCHAR AS \"Email\"")
    report = run(con, "  - not_null: email\n  - expression: 'EMAIL IS NOT NULL'\n")
    assert failing(report, "not_null_email") == {"acme": 1}
    assert failing(report, "expression_2") == {"acme": 1}


def test_the_tenant_column_is_found_whatever_its_case(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE workers AS SELECT * FROM (VALUES ('acme', NULL), ('globex', NULL))"
        ' t("Company_ID", email)'
    )
    report = run(con, "  - not_null: email\n")
    assert failing(report, "not_null_email") == {"acme": 1, "globex": 1}
    assert [s["Company_ID"] for s in by(report)[("not_null_email", "acme")].samples] == ["acme"]


def test_relationships_to_a_table_not_built_or_without_the_field(
    workers: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(
        CheckError, match=rf"^{PATH}:2: check '.*': silver.sites has not been built"
    ):
        run(workers, "  - relationships: {column: site_id, to: sites}\n")
    with pytest.raises(CheckError, match=r"silver.sites has no column 'code' \(columns: "):
        run(
            workers,
            "  - relationships: {column: site_id, to: sites, field: code}\n",
            relations={"silver.sites": "sites"},
        )


def test_sql_duckdb_rejects_names_the_check(workers: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(CheckError) as caught:
        run(workers, "  - not_null: email\n  - range: {column: email, min: 0}\n")
    message = str(caught.value)
    assert message.startswith(f"{PATH}:3: check 'range_email' on silver.workers could not run: ")
    assert "Cannot compare values of type VARCHAR" in message
    with pytest.raises(CheckError, match=rf"^{PATH}:2: check 'freshness_email' .*could not run"):
        run(workers, "  - freshness: {column: email, warn_after: 1h}\n")


# -- scans ---------------------------------------------------------------------------------

ALL_KINDS = """
  - not_null: email
  - accepted_values: {column: status, values: [active, inactive]}
  - format: {column: email, type: email}
  - range: {column: score, min: 0, max: 100}
  - expression: "score IS NULL OR score >= 0"
  - row_count: {min: 1}
  - freshness: {column: updated_at, warn_after: 1d}
  - duplicate_count: {columns: [email]}
  - null_rate: {column: email, max: 0.5}
  - distinct_count: {column: status, min: 1}
  - row_count_drift:
  - null_rate_drift: email
  - unique: email
  - unique: [company_id, worker_id]
  - unique: worker_id
  - relationships: {column: site_id, to: sites}
  - schema: {columns: {email: VARCHAR}}
"""


def test_seventeen_checks_of_every_kind_take_three_scans(
    workers: duckdb.DuckDBPyConnection,
) -> None:
    workers.execute("ALTER TABLE workers ADD COLUMN updated_at TIMESTAMP")
    checks = checks_of(ALL_KINDS)
    assert len(checks) == 17
    plan = plan_checks(checks, "workers", TENANT, {"silver.sites": "sites"}, {"silver.sites": True})
    # aggregates, one GROUPING SETS scan for the keys and distinct counts, one anti join
    assert plan.scans == 3
    assert len(plan.statements()) == 3
    report = run(workers, ALL_KINDS, relations={"silver.sites": "sites"})
    assert report.scans == 3
    assert len(report.results) == 16 * 3 + 1  # per tenant, and one schema result
    assert failing(report, "unique_worker_id") == {"acme": 1, "globex": 0, "initech": 0}
    assert report.seconds >= 0
    filtered = checks_of(ALL_KINDS + "  - unique: {column: email, where: 'score > 0', name: u2}\n")
    assert plan_checks(filtered, "workers", TENANT, {}, {}).scans == 4


def test_summary_names_what_blocks(workers: duckdb.DuckDBPyConnection) -> None:
    report = run(workers, "  - not_null: email\n  - row_count: {min: 1}\n")
    assert report.summary() == (
        "2 failing check result(s): not_null_email (acme: 1 failing rows), "
        "not_null_email (globex: 2 failing rows)"
    )
    clean = run(workers, "  - row_count: {min: 1}\n")
    assert clean.summary() == "3 result(s), no errors"
