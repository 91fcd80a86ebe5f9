"""Checks against Delta table versions: the quality gate of ``strata run`` and ``strata check``.

``check_table`` judges one version of one table (registered in DuckDB with the tables its
``relationships`` checks point at) against the history kept in the catalog.
``QualityGate`` is the ``PublishGate`` a run passes to its builders: it checks each new
version, records the results, sends alerts, and refuses the version when an
error-severity check fails, so readers keep the previous one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from strata.catalog.store import Catalog
from strata.core.logging import fields, get_logger
from strata.quality.alerts import AlertSender, alert_events
from strata.quality.checks import Check
from strata.quality.evaluate import CheckError, TableReport, run_checks
from strata.quality.plan import ident, literal
from strata.quality.settings import load_alert_config
from strata.transform.config import Layer
from strata.transform.gate import PublishBlockedError
from strata.transform.runner import PreparedProject, RunSummary, run_project
from strata.transform.tables import parquet_scan, read_table, table_path, table_version

log = get_logger(__name__)

CHECKED = "__checked"


def check_table(
    table: str,
    checks: Sequence[Check],
    lake: Path,
    catalog: Catalog,
    *,
    tenant_key: str,
    version: int | None = None,
    tenant: str | None = None,
) -> TableReport:
    """Run ``checks`` on ``table`` (``silver.workers``) at ``version`` (default: latest).

    With ``tenant`` only that tenant's rows are checked (``strata run --tenant``)."""
    path = _path(lake, table)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        _register(con, CHECKED, path, version, tenant_key, tenant)
        relations: dict[str, str] = {}
        for target in sorted({c.to_table for c in checks if c.to_table}):
            target_path = _path(lake, target)
            if table_version(target_path) is None:
                continue  # reported by run_checks as not built
            relation = f"__target_{len(relations)}"
            _register(con, relation, target_path, None, tenant_key, tenant)
            relations[target] = relation
        return run_checks(
            con, table, checks, CHECKED, tenant_key, history=catalog, relations=relations
        )
    finally:
        con.close()


@dataclass
class QualityGate:
    """Checks each new table version of a run against the project's declared checks."""

    checks: Mapping[str, Sequence[Check]]  # qualified table -> its checks
    catalog: Catalog
    lake: Path
    tenant_key: str
    run_id: str | None = None
    tenant: str | None = None
    alerts: AlertSender | None = None
    reports: list[TableReport] = field(default_factory=list)

    def __call__(self, table: str, path: Path, version: int, before: int | None) -> None:
        if not self.checks.get(table):
            return
        try:
            report = self.inspect(table, version, publishing=True)
        except CheckError as exc:
            raise PublishBlockedError(f"quality gate could not check {table}: {exc}") from exc
        if report.errors:
            log.error(
                "quality gate withheld a table version",
                extra=fields(table=table, version=version, errors=len(report.errors)),
            )
            raise PublishBlockedError(
                f"quality gate withheld {table} (readers keep version {before}): {report.summary()}"
            )

    def inspect(self, table: str, version: int, *, publishing: bool) -> TableReport:
        """Check ``version`` of ``table``; record the results, alert, log the warnings.

        ``publishing``: the version waits on this verdict (an error withholds it); otherwise
        it is already published (``strata check``) and stays so."""
        report = check_table(
            table,
            self.checks.get(table, ()),
            self.lake,
            self.catalog,
            tenant_key=self.tenant_key,
            version=version,
            tenant=self.tenant,
        )
        published = not (publishing and report.errors)
        self.catalog.record_check_results(
            self.run_id, report.results, table_version=version, published=published
        )
        self.reports.append(report)
        if self.alerts is not None:
            self.alerts.send(
                alert_events(
                    self.alerts.config,
                    report.results,
                    run_id=self.run_id,
                    table_version=version,
                    published=published,
                )
            )
        for result in report.warnings:
            log.warning(
                "check warning",
                extra=fields(table=table, check=result.check, tenant=result.tenant),
            )
        return report


def _path(lake: Path, table: str) -> Path:
    layer, _, model = table.partition(".")
    if layer not in ("silver", "gold"):
        raise CheckError(f"{table}: checks apply to silver and gold tables")
    checked_layer: Layer = "silver" if layer == "silver" else "gold"
    return table_path(lake, checked_layer, model)


def _register(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    version: int | None,
    tenant_key: str,
    tenant: str | None,
) -> None:
    """The Delta table at ``path`` as view ``name`` (only ``tenant``'s rows, if given),
    read by DuckDB's Parquet reader; a table without files through its Arrow dataset."""
    raw = f"{name}__all"
    scan = parquet_scan(path, version)
    if scan is None:
        con.register(raw, read_table(path, version))
    else:
        con.execute(f"CREATE TEMP VIEW {ident(raw)} AS SELECT * FROM {scan}")
    names = {str(row[0]) for row in con.execute(f"DESCRIBE {ident(raw)}").fetchall()}
    where = ""
    if tenant is not None and tenant_key in names:
        where = f" WHERE {ident(tenant_key)} = {literal(tenant)}"
    con.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM {ident(raw)}{where}")


@contextmanager
def quality_gate(
    prepared: PreparedProject, catalog: Catalog, run_id: str, tenant: str | None
) -> Iterator[QualityGate]:
    """The gate of one ``strata run``: the project's checks, its alert webhook (flushed,
    within a bounded wait, when the run ends)."""
    project = prepared.project
    checks = project.checks
    config = load_alert_config(project.root)
    alerts = AlertSender(config) if config is not None else None
    try:
        yield QualityGate(
            checks,
            catalog,
            prepared.lake,
            project.config.tenant_key,
            run_id=run_id,
            tenant=tenant,
            alerts=alerts,
        )
    finally:
        if alerts is not None:
            alerts.close()


@dataclass(frozen=True, slots=True)
class CheckRun:
    run_id: str
    reports: tuple[TableReport, ...]

    @property
    def errors(self) -> int:
        return sum(len(r.errors) for r in self.reports)


def check_project(
    prepared: PreparedProject,
    catalog: Catalog,
    models: Sequence[str],
    *,
    tenant: str | None = None,
) -> CheckRun:
    """``strata check``: run the checks of ``models`` on their current tables, as one
    catalog run of kind ``check``; results are recorded, alerts sent, nothing is blocked."""
    project = prepared.project
    run_id = catalog.start_run("check", params={"models": list(models), "tenant": tenant})
    try:
        with quality_gate(prepared, catalog, run_id, tenant) as gate:
            for name in models:
                table = f"{project.models[name].layer}.{name}"
                if not gate.checks.get(table):
                    continue
                version = table_version(_path(prepared.lake, table))
                if version is None:
                    raise CheckError(f"{table} has not been built yet: `strata run` builds it")
                gate.inspect(table, version, publishing=False)
    except BaseException as exc:
        catalog.finish_run(run_id, "failed", str(exc)[:2000] or type(exc).__name__)
        raise
    reports = gate.reports
    errors = sum(len(r.errors) for r in reports)
    catalog.finish_run(
        run_id,
        "failed" if errors else "succeeded",
        f"{errors} failing check result(s)" if errors else None,
    )
    return CheckRun(run_id, tuple(reports))


def run_checked(root: str | os.PathLike[str], **options: Any) -> RunSummary:
    """``run_project`` with the project's quality gate: what ``strata run`` and refresh jobs
    call. ``options`` are ``run_project``'s."""
    return run_project(root, gate=quality_gate, **options)
