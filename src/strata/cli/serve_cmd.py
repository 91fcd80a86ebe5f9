"""``strata serve``: the project's query API and HTTP collector over HTTP, until Ctrl-C;
``--collector-only`` serves the collector alone (no query routes, no UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from strata.api.app import create_app, create_collector_app
from strata.api.semantic import SemanticLayer
from strata.catalog.store import Catalog
from strata.cli.console import stdout
from strata.cli.keys_cmd import catalog_url
from strata.core.errors import ConfigError
from strata.transform.project import Project, load_project


def serve(
    project: Annotated[
        Path, typer.Option("--project", file_okay=False, help="The project folder (default: here).")
    ] = Path(),
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
    ] = 8000,
    demo_keys: Annotated[
        bool,
        typer.Option(
            "--demo-keys",
            help="Create a viewer key for every tenant with data and print a sign-in URL for "
            "each (for demos: the keys stay valid until revoked).",
        ),
    ] = False,
    collector_only: Annotated[
        bool,
        typer.Option(
            "--collector-only",
            help="Serve only the HTTP collector (POST /api/v1/ingest/<namespace>/<table>, "
            "/health, /metrics): no queries, no UI; needs only strata.toml's lake and catalog.",
        ),
    ] = False,
) -> None:
    """Serve the query API of a project (SQL over each tenant's gold tables and explores)
    and its HTTP collector, which lands records sent with an ingest key in bronze."""
    if collector_only:
        _serve_collector(project, host, port, demo_keys=demo_keys)
        return
    app = create_app(project)  # a bad project or [serve] table stops here, with exit 2
    loaded = load_project(project)
    # Reach the catalog before listening, so a wrong URL or a metric changed under an old
    # version is one line here, not a failed start-up in the server's log.
    with Catalog.open(loaded.config.catalog_url) as catalog:
        semantic: SemanticLayer = app.state.semantic
        semantic.prepare(catalog)
        if demo_keys:
            _print_demo_keys(catalog, _tenants(loaded), host, port)
    stdout().print(
        f"Serving {project.resolve()} on http://{host}:{port} (API docs at /docs)", markup=False
    )
    uvicorn.run(app, host=host, port=port, lifespan="on")


def _serve_collector(project: Path, host: str, port: int, *, demo_keys: bool) -> None:
    if demo_keys:
        raise ConfigError("--demo-keys signs in to the query UI, which --collector-only leaves out")
    app = create_collector_app(project)  # a bad strata.toml or [serve] table stops here
    with Catalog.open(catalog_url(project)):  # reach it before listening, as above
        pass
    stdout().print(
        f"Serving the collector of {project.resolve()} on http://{host}:{port} "
        f"(POST /api/v1/ingest/<namespace>/<table>)",
        markup=False,
    )
    uvicorn.run(app, host=host, port=port, lifespan="on")


def _tenants(project: Project) -> list[str]:
    """Tenants with rows in any gold table: its ``<tenant_key>=<tenant>`` partitions."""
    gold = Path(project.config.lake_url) / "gold"
    prefix = f"{project.config.tenant_key}="
    found = {part.name.removeprefix(prefix) for part in gold.glob(f"*/{prefix}*") if part.is_dir()}
    return sorted(found)


def _print_demo_keys(catalog: Catalog, tenants: list[str], host: str, port: int) -> None:
    out = stdout()
    out.print("Demo sign-in, one viewer key per tenant (plain lines: long URLs must not wrap):")
    width = max((len(t) for t in tenants), default=0)
    for tenant in tenants:
        _, token = catalog.create_key(tenant, "viewer", "demo")
        # The key rides in the fragment, which browsers never send to the server.
        out.print(f"  {tenant:<{width}}  http://{host}:{port}/ui/#key={token}", markup=False)
