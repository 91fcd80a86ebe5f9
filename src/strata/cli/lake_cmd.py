"""``strata lake``: look at what the bronze lake holds."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from strata.cli import options
from strata.cli.console import count, plural, print_warning, size, stdout
from strata.core.errors import ConfigError
from strata.lake.inventory import LakeInventory, inventory
from strata.lake.storage import open_lake

app = typer.Typer(help="Inspect the bronze lake.", no_args_is_help=True)


@app.command(name="ls")
def ls(
    lake: options.Lake = options.DEFAULT_LAKE,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Only this namespace.")
    ] = None,
    table: Annotated[str | None, typer.Option("--table", help="Only this table.")] = None,
    by_tenant: Annotated[
        bool, typer.Option("--by-tenant", help="One row per tenant of each table.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (exact numbers) instead of a table.")
    ] = False,
) -> None:
    """List bronze tables with their tenants, partitions, files, rows and bytes."""
    storage = open_lake(lake)
    if not storage.exists(""):
        raise ConfigError(f"no lake at {storage.url} (set --lake or STRATA_LAKE)")
    inv = inventory(storage, namespace, table)
    if as_json:
        body = {"lake": storage.url, **inv.as_dict(by_tenant=by_tenant)}
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    out = stdout()
    if not inv.tables:
        out.print(f"no bronze files in {storage.url}" + _filters(namespace, table))
    else:
        out.print(_tenant_table(inv) if by_tenant else _table_table(inv))
    if inv.skipped:
        note = f"{plural(inv.skipped, 'Parquet file')} outside the bronze path scheme skipped"
        out.print(Text(note, style="dim"))
    for path in inv.unreadable:
        print_warning(f"{path} is not readable Parquet; its rows are not counted")


def _filters(namespace: str | None, table: str | None) -> str:
    given = [f"{k} {v}" for k, v in (("namespace", namespace), ("table", table)) if v]
    return f" for {' and '.join(given)}" if given else ""


def _name(table: str, quarantine: bool) -> Text:
    if quarantine:  # records whose shape conflicted with the table; not part of it
        return Text(f"{table} (quarantine)", style="yellow")
    return Text(table)


def _numeric(grid: Table, *headers: str) -> None:
    for header in headers:
        grid.add_column(header, justify="right")


def _table_table(inv: LakeInventory) -> Table:
    grid = Table(title="Bronze tables", show_footer=True)
    grid.add_column("namespace", footer="total")
    grid.add_column("table")
    _numeric(grid, "tenants", "partitions", "files", "rows", "bytes")
    totals = (count(inv.files), count(inv.rows), size(inv.bytes))
    for column, total in zip(grid.columns[4:], totals, strict=True):
        column.footer = total
    for t in inv.tables:
        grid.add_row(
            t.namespace, _name(t.table, t.quarantine), count(t.tenants), count(t.partitions),
            count(t.files), count(t.rows), size(t.bytes),
        )  # fmt: skip
    return grid


def _tenant_table(inv: LakeInventory) -> Table:
    grid = Table(title="Bronze tables by tenant")
    grid.add_column("namespace")
    grid.add_column("table")
    grid.add_column("tenant")
    _numeric(grid, "days", "files", "rows", "bytes")
    for t in inv.tenants:
        grid.add_row(
            t.namespace, _name(t.table, t.quarantine), t.tenant, count(t.partitions),
            count(t.files), count(t.rows), size(t.bytes),
        )  # fmt: skip
    return grid
