"""``strata extract SOURCE``: copy a declared source's new rows (SQL or REST) into bronze."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from strata.catalog.store import Catalog
from strata.cli.console import count, progress_bar, stdout
from strata.extract.config import load_source
from strata.extract.rest import extract_rest_source
from strata.extract.rest_config import RestSourceConfig
from strata.extract.sql import ExtractSummary, extract_source
from strata.lake.storage import open_lake
from strata.transform.project import load_project


def extract(
    source: Annotated[str, typer.Argument(help="The source's name (sources/NAME.yml).")],
    project: Annotated[
        Path,
        typer.Option("--project", file_okay=False, help="The project folder (default: here)."),
    ] = Path(),
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", "-e", help="Only this entity (repeatable)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Ignore the watermark and re-read every row.")
    ] = False,
) -> None:
    """Extract the rows changed since the last run; the watermark moves only on success."""
    loaded = load_project(project)
    config = load_source(loaded.root, source)
    storage = open_lake(loaded.config.lake_url)
    with Catalog.open(loaded.config.catalog_url) as catalog, progress_bar() as bar:
        task = bar.add_task(f"extracting {config.name}", total=None)

        def advance(name: str, rows: int) -> None:
            bar.update(
                task, completed=rows, description=f"{config.name}.{name}: {count(rows)} rows"
            )

        summary: ExtractSummary
        if isinstance(config, RestSourceConfig):
            summary = extract_rest_source(
                config, storage, catalog, entities=entity, full=full, progress=advance
            )
        else:
            summary = extract_source(
                config, storage, catalog, entities=entity, full=full, progress=advance
            )
    table = Table(title=f"{summary.source} (run {summary.run_id})")
    for column in ("entity", "rows", "parts", "watermark before → after", "seconds"):
        table.add_column(
            column, justify="right" if column in ("rows", "parts", "seconds") else "left"
        )
    for result in summary.entities:
        table.add_row(
            result.entity,
            count(result.rows),
            str(len(result.parts)),
            f"{result.watermark_before or '—'} → {result.watermark_after or '—'}",
            f"{result.seconds:.1f}",
        )
    stdout().print(table)
