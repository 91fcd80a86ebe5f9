"""Running a table's checks on DuckDB and judging each measure, per tenant.

The table is a DuckDB relation (a registered Delta version); ``plan_checks`` says which
scans to run. Each check gets one result per tenant holding rows (or one result with
``tenant=None`` when the table is empty or has no tenant column), carrying the failing
count or measured value, the threshold, and up to ``sample_limit`` failing rows of that
tenant only, so a tenant shown its results never sees another tenant's rows.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import duckdb
import orjson
from sqlglot import exp
from sqlglot.errors import ParseError

from strata.core.errors import StrataError
from strata.quality.checks import DRIFT_KINDS, Check, Severity
from strata.quality.plan import (
    GROUPING,
    TENANT,
    TablePlan,
    failing_predicate,
    failing_values_sql,
    ident,
    orphan_rows,
    plan_checks,
)
from strata.transform.sql import DIALECT

Status = Literal["pass", "warn", "error"]
STATUSES: Final[tuple[Status, ...]] = ("pass", "warn", "error")
SAMPLE_LIMIT: Final = 3
_EPSILON: Final = 1e-9
_SAMPLE_TEXT: Final = 200  # characters kept of one sampled value


class CheckError(StrataError):
    """A check could not run (a column the table does not have, SQL DuckDB rejects); the
    message names the check, where it was declared and what was wrong."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    table: str
    check: str
    kind: str
    tenant: str | None
    status: Status
    severity: Severity
    failing: int | None  # failing rows (or distinct values) of a row check
    measured: float | None  # the measured value of a table or drift check
    threshold: str
    message: str
    samples: tuple[Mapping[str, Any], ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TableReport:
    table: str
    results: tuple[CheckResult, ...]
    scans: int
    seconds: float

    @property
    def errors(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "error")

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status == "warn")

    def summary(self) -> str:
        """One line naming what blocks: ``2 error(s): not_null_id (acme: 3 rows), ...``."""
        if not self.errors:
            return f"{len(self.results)} result(s), no errors"
        named = ", ".join(f"{r.check} ({r.tenant or 'all'}: {r.message})" for r in self.errors[:5])
        more = "" if len(self.errors) <= 5 else f", and {len(self.errors) - 5} more"
        return f"{len(self.errors)} failing check result(s): {named}{more}"


class History(Protocol):
    """Earlier results of the same table, for drift and schema-drift checks."""

    def recent_measures(
        self, table: str, check: str, tenant: str | None, limit: int
    ) -> list[float]: ...

    def last_schema(self, table: str) -> Mapping[str, str] | None: ...


class NoHistory:
    def recent_measures(
        self, table: str, check: str, tenant: str | None, limit: int
    ) -> list[float]:
        return []

    def last_schema(self, table: str) -> Mapping[str, str] | None:
        return None


def run_checks(
    con: duckdb.DuckDBPyConnection,
    table: str,
    checks: Sequence[Check],
    relation: str,
    tenant_column: str | None,
    *,
    history: History | None = None,
    relations: Mapping[str, str] | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    sample_limit: int = SAMPLE_LIMIT,
) -> TableReport:
    """Every check of ``table`` over the registered ``relation``; ``relations`` maps each
    ``relationships`` target table to its registered relation."""
    started = time.perf_counter()
    columns = describe(con, relation)
    # A table without the tenant key is checked as one whole (tenant None); the key is
    # found as DuckDB finds it, whatever its case, so no tenant's rows pass as "all".
    tenant_column = _named(columns, tenant_column)
    for check in checks:
        _check_columns(check, columns, con, relations or {})
    used = {c.to_table for c in checks if c.kind == "relationships" and c.to_table}
    targets = {t: r for t, r in (relations or {}).items() if t in used}
    parent_tenant = {
        t: tenant_column is not None and _named(describe(con, r), tenant_column) is not None
        for t, r in targets.items()
    }
    plan = plan_checks(
        checks,
        relation,
        tenant_column,
        targets,
        parent_tenant,
    )
    judge = _Judge(table, plan, history or NoHistory(), _utc(now()))
    try:
        judge.read_aggregates(_rows(con, plan.aggregate_sql()))
        failing_values = judge.failing_accepted(checks)
        if failing_values:
            sql, aliases = failing_values_sql(failing_values, relation, tenant_column)
            judge.read_failing_values(aliases, _rows(con, sql))
        for scan in plan.keyed:
            judge.read_keyed(scan.sets, _rows(con, scan.sql))
        for count in plan.counts:
            judge.read_counts(count.check, _rows(con, count.sql))
    except duckdb.Error as exc:
        raise _blame(
            con, table, checks, relation, tenant_column, targets, parent_tenant, exc
        ) from exc
    results = [r for check in checks for r in judge.results(check, columns)]
    try:
        sampled = _with_samples(
            con, results, checks, relation, tenant_column, targets, parent_tenant, sample_limit
        )
    except duckdb.Error as exc:
        raise CheckError(f"failing rows of {table} could not be sampled: {_reason(exc)}") from exc
    return TableReport(table, tuple(sampled), plan.scans, time.perf_counter() - started)


def describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> normalized SQL type of a relation."""
    rows = con.execute(f"DESCRIBE {ident(relation)}").fetchall()
    return {str(name): normalize_type(str(kind)) for name, kind, *_ in rows}


def normalize_type(text: str) -> str:
    try:
        return exp.DataType.build(text, dialect=DIALECT).sql(dialect=DIALECT)
    except (ParseError, ValueError):
        return text.upper()


# -- judging -------------------------------------------------------------------------------


class _Judge:
    """Turns the scans' rows into results, check by check and tenant by tenant."""

    def __init__(self, table: str, plan: TablePlan, history: History, now: dt.datetime) -> None:
        self.table = table
        self.plan = plan
        self.history = history
        self.now = now
        self.tenants: list[str | None] = []
        self.values: dict[str | None, Mapping[str, Any]] = {}
        self.keys: dict[tuple[str, str | None], int] = {}  # distinct values, per key check
        self.failing: dict[tuple[str, str | None], int] = {}
        self.extra: dict[tuple[str, str | None], int] = {}  # duplicate rows, per key check

    def read_aggregates(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            tenant = row[TENANT]
            self.tenants.append(None if tenant is None else str(tenant))
            self.values[self.tenants[-1]] = row
        if not self.tenants:  # an empty table: one result per check, counted as zero rows
            self.tenants.append(None)
            self.values[None] = {m.alias: None for m in self.plan.aggregate.measures}
        self.tenants.sort(key=lambda t: "" if t is None else t)

    def failing_accepted(self, checks: Sequence[Check]) -> list[Check]:
        """The ``accepted_values`` checks with failing rows for some tenant."""
        return [
            c
            for c in checks
            if c.kind == "accepted_values"
            and any(self._value(c, t, "failing_rows") for t in self.tenants)
        ]

    def read_failing_values(self, aliases: Mapping[str, str], rows: list[dict[str, Any]]) -> None:
        for row in rows:
            tenant = None if row[TENANT] is None else str(row[TENANT])
            for name, alias in aliases.items():
                self.failing[(name, tenant)] = int(row[alias] or 0)

    def read_keyed(self, sets: Mapping[int, Sequence[str]], rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for name in sets.get(int(row[GROUPING]), ()):
                tenant = None if row[TENANT] is None else str(row[TENANT])
                self.failing[(name, tenant)] = int(row["failing"])
                self.extra[(name, tenant)] = int(row["extra"] or 0)
                self.keys[(name, tenant)] = int(row["keys"] or 0)

    def read_counts(self, check: str, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            tenant = None if row[TENANT] is None else str(row[TENANT])
            self.failing[(check, tenant)] = int(row["failing"])

    def results(self, check: Check, columns: Mapping[str, str]) -> list[CheckResult]:
        if check.kind == "schema":
            return [self._schema(check, columns)]
        return [self._one(check, tenant) for tenant in self.tenants]

    def _value(self, check: Check, tenant: str | None, role: str) -> Any:
        alias = self.plan.aggregate.roles.get(check.name, {}).get(role)
        if alias is None:
            alias = self.plan.aggregate.roles[""]["rows"] if role == "rows" else None
        return None if alias is None else self.values[tenant].get(alias)

    def _one(self, check: Check, tenant: str | None) -> CheckResult:
        kind = check.kind
        if kind in ("unique", "relationships", "accepted_values"):
            return self._row(check, tenant, self.failing.get((check.name, tenant), 0))
        if kind in ("not_null", "format", "range", "expression"):
            return self._row(check, tenant, int(self._value(check, tenant, "failing") or 0))
        if kind in DRIFT_KINDS:
            return self._drift(check, tenant)
        if kind == "freshness":
            return self._freshness(check, tenant)
        measured = self._measure(check, tenant)
        ok = check.bounds.holds(measured)
        threshold = check.bounds.describe()
        what = {
            "row_count": "rows",
            "duplicate_count": "duplicate rows",
            "null_rate": "NULL share",
            "distinct_count": "distinct values",
        }[kind]
        message = f"{_fmt(measured)} {what}, expected {threshold}"
        return self._result(
            check, tenant, None if ok else check.severity, None, measured, threshold, message
        )

    def _measure(self, check: Check, tenant: str | None) -> float:
        if check.kind == "row_count":
            return float(self._value(check, tenant, "rows") or 0)
        if check.kind == "duplicate_count":
            return float(self.extra.get((check.name, tenant), 0))
        if check.kind in ("null_rate", "null_rate_drift"):
            rows = self._value(check, tenant, "rows") or 0
            return float(self._value(check, tenant, "nulls") or 0) / rows if rows else 0.0
        if check.kind == "distinct_count":
            return float(self.keys.get((check.name, tenant), 0))
        if check.kind == "row_count_drift":
            return float(self._value(check, tenant, "rows") or 0)
        raise ValueError(check.kind)  # pragma: no cover

    def _row(self, check: Check, tenant: str | None, failing: int) -> CheckResult:
        unit = "distinct values" if check.kind in ("unique", "accepted_values") else "rows"
        failed = failing > check.max_failures
        threshold = f"<= {check.max_failures} failing {unit}"
        message = f"{failing} failing {unit}" if failing else "no failing " + unit
        return self._result(
            check, tenant, check.severity if failed else None, failing, None, threshold, message
        )

    def _freshness(self, check: Check, tenant: str | None) -> CheckResult:
        newest = self._value(check, tenant, "newest")
        parts = []
        if check.warn_after_s is not None:
            parts.append(f"warn after {_age(check.warn_after_s)}")
        if check.error_after_s is not None:
            parts.append(f"error after {_age(check.error_after_s)}")
        threshold = ", ".join(parts)
        if newest is None:  # no timestamps at all: as stale as the check can say
            return self._result(
                check,
                tenant,
                "error" if check.error_after_s is not None else "warn",
                None,
                None,
                threshold,
                f"no {check.column} values to judge freshness",
            )
        age = max(0.0, self.now.timestamp() - float(newest))
        level: Severity | None = None
        if check.error_after_s is not None and age > check.error_after_s:
            level = "error"
        elif check.warn_after_s is not None and age > check.warn_after_s:
            level = "warn"
        message = f"newest {check.column} is {_age(age)} old"
        return self._result(check, tenant, level, None, age, threshold, message)

    def _drift(self, check: Check, tenant: str | None) -> CheckResult:
        current = self._measure(check, tenant)
        past = self.history.recent_measures(self.table, check.name, tenant, check.window)
        threshold = f"warn at {check.warn_change:.0%} change, error at {check.error_change:.0%}"
        needed = min(check.min_history, check.window)  # more than the window never comes
        if len(past) < needed:
            message = (
                f"{_fmt(current)} measured; {len(past)} of {needed} earlier runs "
                "needed to judge drift"
            )
            return self._result(check, tenant, None, None, current, threshold, message)
        baseline = statistics.median(past)
        if check.kind == "null_rate_drift":
            change = abs(current - baseline)  # rates drift in points, not relative to ~0
        elif baseline == 0:
            change = 0.0 if current == 0 else float("inf")
        else:
            change = abs(current - baseline) / baseline
        level: Severity | None = None
        # A change of exactly a threshold reaches it, whatever binary floats make of it
        # (0.3 - 0.2 is 0.0999...).
        if change >= check.error_change - _EPSILON:
            level = "error"
        elif change >= check.warn_change - _EPSILON:
            level = "warn"
        message = (
            f"{_fmt(current)} against a median of {_fmt(baseline)} over {len(past)} runs "
            f"({_pct(change)} change)"
        )
        detail = {
            "baseline": baseline,
            "change": None if change == float("inf") else change,
            "history": len(past),
        }
        return self._result(check, tenant, level, None, current, threshold, message, detail)

    def _schema(self, check: Check, columns: Mapping[str, str]) -> CheckResult:
        expected = {c: normalize_type(t) for c, t in check.expected_columns.items()}
        missing = sorted(set(expected) - set(columns))
        changed = {
            c: {"expected": t, "actual": columns[c]}
            for c, t in expected.items()
            if c in columns and columns[c] != t
        }
        extra = sorted(set(columns) - set(expected))
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if changed:
            problems.append(
                "type of "
                + ", ".join(
                    f"{c} is {d['actual']}, expected {d['expected']}" for c, d in changed.items()
                )
            )
        if extra and not check.allow_extra_columns:
            problems.append(f"unexpected {', '.join(extra)}")
        drift = _schema_drift(self.history.last_schema(self.table), columns)
        level: Severity | None = (
            check.severity if problems else ("warn" if any(drift.values()) else None)
        )
        notes = problems + [
            f"since the last check: {k} {', '.join(v)}" for k, v in drift.items() if v
        ]
        message = "; ".join(notes) or f"{len(columns)} columns as expected"
        detail = {
            "columns": dict(columns),
            "missing": missing,
            "changed": changed,
            "unexpected": extra if not check.allow_extra_columns else [],
            "drift": drift,
        }
        threshold = f"{len(expected)} declared column(s)" + (
            "" if check.allow_extra_columns else ", no others"
        )
        unexpected = extra if not check.allow_extra_columns else []
        failing = len(missing) + len(changed) + len(unexpected)
        return self._result(check, None, level, failing, None, threshold, message, detail)

    def _result(
        self,
        check: Check,
        tenant: str | None,
        level: Severity | None,
        failing: int | None,
        measured: float | None,
        threshold: str,
        message: str,
        detail: Mapping[str, Any] | None = None,
    ) -> CheckResult:
        status: Status = "pass"
        if level is not None:
            # A check declared warn never blocks, whatever its thresholds say.
            status = "warn" if check.severity == "warn" else level
        return CheckResult(
            self.table,
            check.name,
            check.kind,
            tenant,
            status,
            check.severity,
            failing,
            measured,
            threshold,
            message,
            (),
            detail or {},
        )


def _schema_drift(
    previous: Mapping[str, str] | None, columns: Mapping[str, str]
) -> dict[str, list[str]]:
    if previous is None:
        return {"added": [], "removed": [], "changed": []}
    return {
        "added": sorted(set(columns) - set(previous)),
        "removed": sorted(set(previous) - set(columns)),
        "changed": sorted(c for c in columns if c in previous and previous[c] != columns[c]),
    }


# -- samples -------------------------------------------------------------------------------


def _with_samples(
    con: duckdb.DuckDBPyConnection,
    results: list[CheckResult],
    checks: Sequence[Check],
    relation: str,
    tenant_column: str | None,
    targets: Mapping[str, str],
    parent_tenant: Mapping[str, bool],
    limit: int,
) -> list[CheckResult]:
    """Up to ``limit`` failing rows on each result that did not pass, fetched only when a
    check fails: one scan for all failing row checks (a flag column each), plus one query
    per failing key check (``unique``, ``duplicate_count``: duplicates need a window)."""
    if limit <= 0:
        return results
    by_name = {c.name: c for c in checks}
    failing = sorted(
        {
            r.check
            for r in results
            if r.status != "pass" and ((r.failing or 0) > 0 or r.kind == "duplicate_count")
        }
    )
    samples: dict[tuple[str, str | None], tuple[Mapping[str, Any], ...]] = {}
    tenant = ident(tenant_column) if tenant_column else "NULL"

    def keep(name: str, row: Mapping[str, Any]) -> None:
        key = (name, None if tenant_column is None else _tenant_text(row.get(tenant_column)))
        if len(samples.get(key, ())) < limit:
            samples[key] = (*samples.get(key, ()), _safe_row(row))

    flagged: list[tuple[str, str]] = []  # (check, predicate over the table aliased c)
    for name in failing:
        check = by_name[name]
        if check.kind == "relationships":  # a hash anti join, not a correlated subquery
            target = targets.get(check.to_table or "", "")
            with_tenant = parent_tenant.get(check.to_table or "", False)
            orphans = orphan_rows(check, relation, target, tenant_column, with_tenant)
            sql = (
                f"SELECT * EXCLUDE (__rank) FROM (SELECT *, row_number() OVER "
                f"(PARTITION BY {tenant}) AS __rank FROM ({orphans})) "
                f"WHERE __rank <= {int(limit)}"
            )
            for row in _rows(con, sql):
                keep(name, row)
            continue
        predicate = failing_predicate(check) or ""
        if not predicate:
            continue  # a table measure: no rows to show
        if check.where:
            predicate = f"({check.where}) AND ({predicate})"
        if check.kind not in ("unique", "duplicate_count"):
            flagged.append((name, predicate))
            continue
        keys = [ident(c) for c in check.columns]
        partition = ", ".join([*([tenant] if tenant_column else []), *keys])
        duplicated = (
            f"SELECT c.* FROM {ident(relation)} AS c WHERE {predicate} "
            f"QUALIFY count(*) OVER (PARTITION BY {partition}) > 1"
        )
        sql = (
            f"SELECT * EXCLUDE (__rank) FROM (SELECT *, row_number() OVER "
            f"(PARTITION BY {tenant}) AS __rank FROM ({duplicated})) WHERE __rank <= {int(limit)}"
        )
        for row in _rows(con, sql):
            keep(name, row)
    if flagged:
        flags = ", ".join(f"coalesce({p}, false) AS __f{i}" for i, (_, p) in enumerate(flagged))
        first = " OR ".join(
            f"(__f{i} AND row_number() OVER (PARTITION BY {tenant}, __f{i}) <= {int(limit)})"
            for i in range(len(flagged))
        )
        any_failing = " OR ".join(f"coalesce({p}, false)" for _, p in flagged)
        sql = (
            f"SELECT * FROM (SELECT c.*, {flags} FROM {ident(relation)} AS c "
            f"WHERE {any_failing}) QUALIFY {first}"
        )
        for row in _rows(con, sql):
            record = {k: v for k, v in row.items() if not k.startswith("__f")}
            for i, (name, _) in enumerate(flagged):
                if row[f"__f{i}"]:
                    keep(name, record)
    return [
        _replace(r, samples[(r.check, r.tenant)])
        if r.status != "pass" and (r.check, r.tenant) in samples
        else r
        for r in results
    ]


def _replace(result: CheckResult, samples: tuple[Mapping[str, Any], ...]) -> CheckResult:
    return CheckResult(
        result.table,
        result.check,
        result.kind,
        result.tenant,
        result.status,
        result.severity,
        result.failing,
        result.measured,
        result.threshold,
        result.message,
        samples,
        result.detail,
    )


def _safe_row(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A row as JSON-ready values, long text cut: samples go to the catalog and the API."""
    safe = orjson.loads(orjson.dumps(dict(row), default=str, option=orjson.OPT_NON_STR_KEYS))
    return {k: v[:_SAMPLE_TEXT] if isinstance(v, str) else v for k, v in safe.items()}


# -- helpers -------------------------------------------------------------------------------


def _check_columns(
    check: Check,
    columns: Collection[str],
    con: duckdb.DuckDBPyConnection,
    relations: Mapping[str, str],
) -> None:
    # DuckDB resolves identifiers case-insensitively, quoted or not.
    known = {c.casefold() for c in columns}
    missing = [c for c in check.columns if c.casefold() not in known]
    for sql in (check.sql, check.where):
        if sql:
            tree: exp.Expr = exp.maybe_parse(sql, dialect=DIALECT)
            missing += [c.name for c in tree.find_all(exp.Column) if c.name.casefold() not in known]
    if missing:
        raise CheckError(
            f"{check.location}: check '{check.name}' on {check.table}: no column "
            f"'{missing[0]}' in the table (columns: {', '.join(sorted(columns))})"
        )
    if check.kind == "relationships":
        target = relations.get(check.to_table or "")
        if target is None:
            raise CheckError(
                f"{check.location}: check '{check.name}': {check.to_table} has not been built"
            )
        parent = describe(con, target)
        if (check.to_column or "").casefold() not in {c.casefold() for c in parent}:
            raise CheckError(
                f"{check.location}: check '{check.name}': {check.to_table} has no column "
                f"'{check.to_column}' (columns: {', '.join(sorted(parent))})"
            )


def _blame(
    con: duckdb.DuckDBPyConnection,
    table: str,
    checks: Sequence[Check],
    relation: str,
    tenant_column: str | None,
    targets: Mapping[str, str],
    parent_tenant: Mapping[str, bool],
    error: duckdb.Error,
) -> CheckError:
    """The error of a scan that failed, naming the check that made it fail: each check's
    scans are run alone until one fails (only on this failure path, so cost is no issue)."""
    for check in checks:
        if check.kind == "schema":
            continue
        plan = plan_checks([check], relation, tenant_column, dict(targets), dict(parent_tenant))
        try:
            for sql in plan.statements():
                con.sql(sql).fetchall()
        except duckdb.Error as exc:
            return CheckError(
                f"{check.location}: check '{check.name}' on {table} could not run: {_reason(exc)}"
            )
    return CheckError(f"checks on {table} could not run: {_reason(error)}")


def _named(columns: Collection[str], name: str | None) -> str | None:
    """The column of ``columns`` DuckDB takes ``name`` for (case-insensitive), if any."""
    if name is None:
        return None
    return next((c for c in columns if c.casefold() == name.casefold()), None)


def _utc(moment: dt.datetime) -> dt.datetime:
    """An injected clock's time, naive read as UTC (as DuckDB's epoch() reads TIMESTAMP)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    # Through Arrow: DuckDB's own Python conversion of TIMESTAMPTZ needs pytz.
    rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows


def _reason(error: duckdb.Error) -> str:
    return str(error).split("\n\n", 1)[0].strip()


def _tenant_text(value: object) -> str | None:
    return None if value is None else str(value)


def _fmt(value: float) -> str:
    if value == float("inf"):
        return "inf"
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _pct(value: float) -> str:
    return "infinite" if value == float("inf") else f"{value:.0%}"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
