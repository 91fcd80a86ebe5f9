"""Alembic environment for the catalog.

Called by ``strata.catalog.migrate`` with an open connection in ``config.attributes``;
also usable from Alembic's command line with ``-x url=...`` for developers.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from strata.catalog.backends import WRITE_OPTION, backend_for
from strata.catalog.config import CatalogConfig, engine_url
from strata.catalog.migrate import VERSION_TABLE
from strata.catalog.schema import Base

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url if url else CatalogConfig.from_env().url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade head --sql``) for DBAs."""
    context.configure(
        url=engine_url(_url()),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = engine_url(_url())
    engine = backend_for(url).create_engine(url).execution_options(**{WRITE_OPTION: True})
    try:
        with engine.begin() as own_connection:
            _run_on(own_connection)
    finally:
        engine.dispose()


def _run_on(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        backend_for(connection.engine.url).lock_for_migration(connection)
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
