"""``strata keys``: create, list and revoke the API keys of the query API and of the HTTP
collector (``--role ingest --namespace N``)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from strata.catalog.config import ENV_VAR as CATALOG_ENV
from strata.catalog.config import CatalogConfig
from strata.catalog.keys import KEY_ID_LENGTH, ApiKey, ApiKeyNotFoundError
from strata.catalog.store import Catalog
from strata.cli.console import stdout
from strata.core.access import ROLES, parse_role
from strata.core.errors import ConfigError
from strata.transform.config import ProjectError
from strata.transform.project import PROJECT_FILE, _read_config

app = typer.Typer(
    help="Manage API keys of the query API and the collector; stored hashed in the catalog.",
    no_args_is_help=True,
)

ProjectDir = Annotated[
    Path,
    typer.Option(
        "--project",
        file_okay=False,
        help=f"The project whose catalog holds the keys (default: here); "
        f"${CATALOG_ENV} wins if set.",
    ),
]


@app.command(name="create")
def create(
    role: Annotated[
        str,
        typer.Option("--role", help=f"What the key may do: {' | '.join(ROLES)}."),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="The tenant the key acts for; required except for platform_admin, and "
            "optional for ingest (without it, each record names its tenant).",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            help="The namespace an ingest key lands records in (ingest keys only).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="A label to recognise the key by, e.g. who holds it."),
    ] = None,
    project: ProjectDir = Path(),
) -> None:
    """Create an API key and print its token: the only time the token is shown."""
    parse_role(role)  # before opening (and maybe creating) the catalog
    with _open_catalog(project) as catalog:
        key, token = catalog.create_key(tenant, role, name, namespace=namespace)
    if key.namespace is not None:
        tenants = "each record's tenant" if key.tenant is None else f"tenant {key.tenant}"
        scope = f"namespace {key.namespace}, {tenants}"
    else:
        scope = "all tenants" if key.tenant is None else f"tenant {key.tenant}"
    out = stdout()
    out.print(f"Created API key {key.key_id} ({key.role}, {scope}).", markup=False)
    out.print("Token (shown once; store it now, it cannot be read back):", markup=False)
    typer.echo(token)


@app.command(name="revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The id of the key to revoke (see `keys list`).")],
    project: ProjectDir = Path(),
) -> None:
    """Revoke an API key; requests using it are refused from now on."""
    with _open_catalog(project) as catalog:
        if catalog.revoke_key(key_id):
            stdout().print(f"Revoked API key {key_id}.", markup=False)
            return
        key = catalog.get_key(key_id)
    if key is None:
        raise ApiKeyNotFoundError(key_id)
    when = "" if key.revoked_at is None else f" at {_when(key.revoked_at)} UTC"
    stdout().print(f"API key {key_id} was already revoked{when}.", markup=False)


@app.command(name="list")
def list_keys(
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Only this tenant's keys (platform_admin keys have none)."),
    ] = None,
    project: ProjectDir = Path(),
) -> None:
    """List API keys, revoked ones too, oldest first; secrets are never shown."""
    with _open_catalog(project) as catalog:
        keys = catalog.list_keys(tenant)
    out = stdout()
    if not keys:
        out.print("no API keys" + (f" for tenant {tenant}" if tenant else ""), markup=False)
        return
    table = Table(title="API keys (times in UTC)")
    # The id is what `keys revoke` takes: never cut it; other cells wrap, never lose text.
    table.add_column("key id", no_wrap=True, min_width=KEY_ID_LENGTH)
    for column in ("tenant", "role", "namespace", "name", "created", "last used", "status"):
        table.add_column(column, overflow="fold")
    for key in keys:
        status = (
            Text(f"revoked {_when(key.revoked_at)}", style="red")
            if key.revoked_at is not None
            else Text("active", style="green")
        )
        table.add_row(
            key.key_id,
            Text(key.tenant) if key.tenant is not None else Text(_no_tenant(key), style="dim"),
            key.role,
            Text(key.namespace or ""),
            Text(key.name or ""),  # user text: never markup
            _when(key.created_at),
            _when(key.last_used_at) if key.last_used_at is not None else "never",
            status,
        )
    out.print(table)


def _no_tenant(key: ApiKey) -> str:
    return "(per record)" if key.namespace is not None else "(all)"


def _open_catalog(project: Path) -> Catalog:
    return Catalog.open(catalog_url(project))


def catalog_url(project: Path, environ: Mapping[str, str] | None = None) -> str:
    """The catalog of ``project``: ``$STRATA_CATALOG_URL`` if set, else its strata.toml's.

    Only strata.toml is read, not the models: a broken model must not stand in the way
    of revoking a key. Without either, refuse rather than create a catalog nobody serves.
    """
    env = os.environ if environ is None else environ
    if env.get(CATALOG_ENV, "").strip():
        return CatalogConfig.from_env(project, env).url
    root = project.resolve()
    if not (root / PROJECT_FILE).is_file():
        raise ConfigError(
            f"no {PROJECT_FILE} in {root}: pass --project with a Strata project folder "
            f"or set {CATALOG_ENV}"
        )
    problems: list[ProjectError] = []
    config = _read_config(root, env, problems)
    if problems:
        raise problems[0]
    if config is None:  # pragma: no cover - _read_config reports why whenever it gives up
        raise ConfigError(f"cannot read {root / PROJECT_FILE}")
    return config.catalog_url


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
