"""``strata sink nats``: land domain events from NATS JetStream in the bronze lake.

Runs until SIGTERM/SIGINT (the open batch is committed and acked, exit 0) or, with
``--idle-exit-s``, until no message arrived for that long. Prints the run's counters as one
JSON line on stdout. NATS unreachable: one-line error, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strata.cli import options
from strata.ingest.nats_sink import SinkConfig, run_sink, stats_json
from strata.lake.storage import open_lake

app = typer.Typer(help="Long-running sinks from event buses into the bronze lake.")


@app.command(name="nats")
def nats_cmd(
    subject: Annotated[str, typer.Option("--subject", help="Subject filter, e.g. 'melmastoon.>'.")],
    durable: Annotated[
        str, typer.Option("--durable", help="Durable pull-consumer name (resumes on restart).")
    ] = "strata-sink",
    server: Annotated[str, typer.Option("--server", help="NATS server URL.")] = (
        "nats://127.0.0.1:4222"
    ),
    stream: Annotated[
        str | None,
        typer.Option("--stream", help="JetStream stream to read (default: the one covering it)."),
    ] = None,
    create_stream: Annotated[
        str | None,
        typer.Option("--create-stream", help="Create this stream over --subject if missing."),
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="Bronze namespace.")] = "events",
    source_service: Annotated[
        str | None,
        typer.Option("--source-service", help="source_service column (default: type prefix)."),
    ] = None,
    batch_max_records: Annotated[
        int, typer.Option("--batch-max-records", min=1, help="Commit a batch at this many events.")
    ] = 500,
    batch_max_age_s: Annotated[
        float,
        typer.Option("--batch-max-age-s", min=0.01, help="Commit a batch after this many seconds."),
    ] = 5.0,
    ack_wait_s: Annotated[
        float,
        typer.Option(
            "--ack-wait-s", min=0.5, help="Seconds before JetStream redelivers an unacked event."
        ),
    ] = 30.0,
    idle_exit_s: Annotated[
        float | None,
        typer.Option("--idle-exit-s", help="Exit after this many seconds without a message."),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", file_okay=False, help="Where the dedupe index lives."),
    ] = Path(".strata/nats-sink"),
    lake: options.Lake = options.DEFAULT_LAKE,
) -> None:
    """Consume SUBJECT with a durable pull consumer and land each event raw in bronze."""
    config = SinkConfig(
        subject=subject,
        durable=durable,
        server=server,
        stream=create_stream or stream,
        create_stream=create_stream is not None,
        namespace=namespace,
        source_service=source_service,
        batch_max_records=batch_max_records,
        batch_max_age_s=batch_max_age_s,
        ack_wait_s=ack_wait_s,
        idle_exit_s=idle_exit_s,
    )
    stats = run_sink(config, open_lake(lake), state_dir)
    typer.echo(stats_json(stats))
