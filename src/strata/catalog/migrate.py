"""Alembic, run from code: the migration scripts ship inside the package, no alembic.ini.

Every function takes an open SQLAlchemy ``Connection`` inside a transaction; the caller
commits. Strata developers reach Alembic's own commands through
``python -m strata.catalog.migrations`` (see ``migrations/__main__.py``).
"""

from __future__ import annotations

import threading
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

SCRIPT_LOCATION: Final = "strata.catalog:migrations"
# Not Alembic's default name, so a catalog placed in a database that already has its own
# Alembic history (an application's PostgreSQL) does not collide with it.
VERSION_TABLE: Final = "strata_alembic_version"

# Alembic keeps the running environment in module globals (``alembic.context``, ``op``), so
# two threads migrating at once, even different databases, would trample each other.
# Processes are kept apart by the database (advisory lock / BEGIN IMMEDIATE, see backends).
_ALEMBIC_LOCK: Final = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    with _ALEMBIC_LOCK:
        command.downgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
