"""``strata check``: run the declared data-quality checks on demand, and read their history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from strata.catalog.quality import HISTORY_LIMIT
from strata.catalog.store import Catalog
from strata.cli.console import stdout
from strata.quality.evaluate import CheckResult
from strata.quality.gate import check_project
from strata.transform.runner import prepare_project
from strata.transform.selection import select as select_models

app = typer.Typer(
    help="Run data-quality checks on the current tables; `strata check history` reads results.",
    invoke_without_command=True,
    no_args_is_help=False,
)

ProjectDir = Annotated[
    Path,
    typer.Option("--project", file_okay=False, help="The project folder (default: here)."),
]
_STYLES = {"pass": "green", "warn": "yellow", "error": "red"}


@app.callback()
def check(
    ctx: typer.Context,
    project: ProjectDir = Path(),
    select: Annotated[
        str | None,
        typer.Option("--select", "-s", help="Models to check: name, +name, name+, layer:gold."),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="Models to leave out (same syntax).")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's rows.")] = None,
) -> None:
    """Check the selected models' current tables; exits 1 if an error-severity check fails."""
    if ctx.invoked_subcommand is not None:
        return
    prepared = prepare_project(project)
    chosen = select_models(prepared.dag, select, exclude)
    with Catalog.open(prepared.project.config.catalog_url) as catalog:
        outcome = check_project(prepared, catalog, chosen, tenant=tenant)
    results = [r for report in outcome.reports for r in report.results]
    if not results:
        stdout().print("no checks are declared on the selected models")
        return
    stdout().print(_results_table(f"checks (run {outcome.run_id})", results))
    _print_samples(results)
    if outcome.errors:
        raise typer.Exit(1)


@app.command()
def history(
    table: Annotated[str, typer.Argument(help="The table, e.g. silver.workers.")],
    project: ProjectDir = Path(),
    check_name: Annotated[
        str | None, typer.Option("--check", help="Only this check's results.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many results.")
    ] = HISTORY_LIMIT,
) -> None:
    """Print a table's check results over time, newest first."""
    prepared = prepare_project(project)
    with Catalog.open(prepared.project.config.catalog_url) as catalog:
        rows = catalog.check_history(table, check=check_name, tenant=tenant, limit=limit)
    if not rows:
        stdout().print(f"no check results recorded for {table}")
        return
    view = Table(title=f"{table}: check history")
    for column in ("when", "run", "version", "check", "tenant", "status", "value", "message"):
        view.add_column(column, justify="right" if column in ("version", "value") else "left")
    for row in rows:
        value = row.failing if row.failing is not None else row.measured
        view.add_row(
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (row.run_id or "")[:8],
            "" if row.table_version is None else str(row.table_version),
            row.check,
            row.tenant or "—",
            f"[{_STYLES[row.status]}]{row.status}[/]" + ("" if row.published else " (withheld)"),
            "" if value is None else f"{value:g}",
            row.message,
        )
    stdout().print(view)


def _results_table(title: str, results: Sequence[CheckResult]) -> Table:
    view = Table(title=title)
    for column in ("table", "check", "tenant", "status", "value", "threshold", "message"):
        view.add_column(column, justify="right" if column == "value" else "left")
    for r in results:
        value = r.failing if r.failing is not None else r.measured
        view.add_row(
            r.table,
            r.check,
            r.tenant or "—",
            f"[{_STYLES[r.status]}]{r.status}[/]",
            "" if value is None else f"{value:g}",
            r.threshold,
            r.message,
        )
    return view


def _print_samples(results: Sequence[CheckResult]) -> None:
    out = stdout()
    for r in results:
        if r.status != "pass" and r.samples:
            out.print(f"{r.table} {r.check} ({r.tenant or 'all'}), failing rows:", markup=False)
            for sample in r.samples:
                out.print(f"  {dict(sample)}", markup=False)
