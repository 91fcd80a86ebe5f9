"""``strata run``, ``strata show`` and ``strata compile``: build models, look at a model's
table, and print the SQL a model runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import duckdb
import pyarrow as pa
import typer
from rich.table import Table
from sqlglot import exp

from strata.catalog.store import Catalog
from strata.cli.console import count, progress_bar, stdout
from strata.quality.gate import run_checked
from strata.transform.errors import SelectionError
from strata.transform.gold import compile_gold
from strata.transform.project import load_project
from strata.transform.runner import ModelResult, PreparedProject, prepare_project
from strata.transform.silver import _BATCH, compile_silver
from strata.transform.sql import DIALECT
from strata.transform.tables import read_table, table_path

_RELATION = "model"

ProjectDir = Annotated[
    Path,
    typer.Option("--project", file_okay=False, help="The project folder (default: here)."),
]


def run(
    project: ProjectDir = Path(),
    select: Annotated[
        str | None,
        typer.Option("--select", "-s", help="Models to build: name, +name, name+, layer:gold."),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="Models to leave out (same syntax).")
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option("--full-refresh", help="Rebuild tables from scratch, re-reading all bronze."),
    ] = False,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Only this tenant: read its bronze, replace only its rows."),
    ] = None,
) -> None:
    """Build the project's models in dependency order, each new table passing its declared
    checks before it is published; exits 1 if any model failed."""
    with progress_bar() as bar:
        task = bar.add_task("building models", total=None)

        def advance(result: ModelResult) -> None:
            bar.update(task, advance=1, description=f"{result.name}: {result.status}")

        summary = run_checked(
            project,
            select=select,
            exclude=exclude,
            full_refresh=full_refresh,
            progress=advance,
            tenant=tenant,
        )
    table = Table(title=f"run {summary.run_id}")
    for column in ("model", "layer", "status"):
        table.add_column(column)
    for column in ("rows in", "rows out", "seconds"):
        table.add_column(column, justify="right")
    styles = {"succeeded": "green", "failed": "red", "skipped": "yellow"}
    for r in summary.results:
        table.add_row(
            r.name,
            r.layer,
            f"[{styles[r.status]}]{r.status}[/]",
            count(r.rows_in),
            count(r.rows_out),
            f"{r.seconds:.2f}",
        )
    out = stdout()
    out.print(table)
    for r in summary.failed:
        out.print(f"{r.name}: {r.error}", markup=False)
    _print_checks(project, summary.run_id)
    if summary.failed:
        raise typer.Exit(1)


def _print_checks(project: Path, run_id: str) -> None:
    """One line on the run's data-quality checks, and one per warning or error."""
    with Catalog.open(load_project(project).config.catalog_url) as catalog:
        results = catalog.run_check_results(run_id)
    if not results:
        return
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "error")}
    out = stdout()
    out.print(
        f"checks: {counts['pass']} passed, {counts['warn']} warning(s), {counts['error']} "
        "error(s) (strata check history TABLE shows them over time)",
        markup=False,
    )
    for r in results:
        if r.status != "pass":
            out.print(
                f"  {r.status}: {r.table} {r.check} ({r.tenant or 'all'}): {r.message}",
                markup=False,
            )


def show(
    model: Annotated[str, typer.Argument(help="The model whose table to print.")],
    project: ProjectDir = Path(),
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's rows.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows.")] = 20,
) -> None:
    """Print rows of a model's current table."""
    prepared = prepare_project(project)
    layer = _model(prepared, model).layer
    dataset = read_table(table_path(prepared.lake, layer, model))
    query = exp.select(exp.Star()).from_(exp.to_identifier(_RELATION, quoted=True))
    params: list[Any] = []
    if tenant is not None:
        key = exp.column(prepared.project.config.tenant_key, quoted=True)
        query = query.where(exp.EQ(this=key, expression=exp.Placeholder()))
        params.append(tenant)
    query = query.limit(limit)
    con = duckdb.connect()
    try:
        con.register(_RELATION, dataset)
        # Arrow, not Python rows: DuckDB needs pytz to hand out aware timestamps.
        result: pa.Table = con.sql(query.sql(dialect=DIALECT), params=params).to_arrow_table()
    finally:
        con.close()
    table = Table(title=f"{layer}.{model}")
    for name in result.column_names:
        table.add_column(name)
    for row in result.to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    stdout().print(table)


def compile_model(
    model: Annotated[str, typer.Argument(help="The model whose SQL to print.")],
    project: ProjectDir = Path(),
) -> None:
    """Print the SQL a model runs (DuckDB dialect)."""
    prepared = prepare_project(project)
    parsed = _model(prepared, model)
    if parsed.layer == "silver":
        config = prepared.project.models[model].config
        query = compile_silver(parsed, config, _BATCH)
    else:
        query = compile_gold(parsed)
    typer.echo(query.sql(dialect=DIALECT, pretty=True))


def _model(prepared: PreparedProject, name: str) -> Any:
    if name not in prepared.models:
        raise SelectionError(name, f"no model named '{name}'")
    return prepared.models[name]
