"""``strata demo``: land a demo dataset and show what the lake now holds.

``--example workforce`` (the default) lands the workforce-compliance demo
(``examples/workforce``); ``--example hospitality`` lands the hotel property-management
domain events of ``examples/hospitality`` into ``pms.events``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from strata.cli import options
from strata.cli.console import count, plural, progress_bar, stdout
from strata.demo import hospitality
from strata.demo.landing import DemoSummary, estimate_records, land_demo


class Example(StrEnum):
    workforce = "workforce"
    hospitality = "hospitality"


def demo(
    lake: options.Lake = options.DEFAULT_LAKE,
    seed: Annotated[
        int, typer.Option("--seed", help="Generator seed; the same seed gives the same data.")
    ] = 7,
    scale: Annotated[
        float,
        typer.Option(
            "--scale",
            help="Size relative to the default (1.0 is ~120k workforce records, or ~19k "
            "hospitality events); must be > 0.",
        ),
    ] = 1.0,
    journal_dir: options.JournalDir = None,
    example: Annotated[
        Example,
        typer.Option(
            "--example",
            help="Which example's data: workforce (companies, workers, licenses, lab tests of "
            "12+ tenants) or hospitality (hotel PMS domain events of 3 hotel groups).",
        ),
    ] = Example.workforce,
) -> None:
    """Land deterministic demo data: the workforce example's by default, or --example's."""
    if example is Example.hospitality:
        _hospitality(lake, journal_dir, seed, scale)
        return
    # The bar's total is an estimate from the tenant plan (exact counting would mean
    # generating twice); it is corrected to the real count when landing ends.
    estimate = estimate_records(seed, scale)
    with progress_bar() as bar:
        task = bar.add_task("landing demo records", total=estimate)

        def advance(n: int) -> None:
            bar.update(task, completed=n, total=max(estimate, n))

        summary = land_demo(lake, journal_dir, seed=seed, scale=scale, progress=advance)
    _print_summary(summary, lake)


def _hospitality(lake: str, journal_dir: options.JournalDir, seed: int, scale: float) -> None:
    events = hospitality.generate(seed, scale)  # in memory: small, and the total is exact
    with progress_bar() as bar:
        task = bar.add_task("landing hospitality events", total=len(events))

        def advance(n: int) -> None:
            bar.update(task, completed=n)

        summary = hospitality.land_events(lake, journal_dir, events, advance)
    _print_summary(summary, lake)


def _print_summary(summary: DemoSummary, lake: str) -> None:
    out = stdout()
    out.print(f"Landed {count(summary.records)} demo records into {lake}")
    grid = Table(title="Demo tables", show_footer=True)
    grid.add_column("table", footer="total")
    for header in ("tenants", "files", "rows"):
        grid.add_column(header, justify="right")
    grid.columns[2].footer = count(sum(t.files for t in summary.tables))
    grid.columns[3].footer = count(sum(t.rows for t in summary.tables))
    for t in summary.tables:
        grid.add_row(f"{t.namespace}.{t.table}", count(t.tenants), count(t.files), count(t.rows))
    out.print(grid)
    out.print(f"Quarantined (shape conflicts): {count(summary.quarantined)} records")
    for s in summary.sources:
        if s.quarantined:
            out.print(f"  {s.namespace}/{s.source_service}: {count(s.quarantined)}")
    for q in summary.quarantine_tables:
        out.print(
            f"  in lake: {q.namespace}/_quarantine/{q.table}: {count(q.rows)} rows, "
            f"{plural(q.tenants, 'tenant')}"
        )
    landed = sum(t.rows for t in (*summary.tables, *summary.quarantine_tables))
    if landed > summary.records:
        note = "the lake already held demo data; table counts include earlier runs"
        out.print(Text(note, style="dim"))
