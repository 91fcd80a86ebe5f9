"""Catalog fixtures: every test runs against a SQLite file and a fresh PostgreSQL database.

PostgreSQL follows SERVICES.md: with ``CI=true`` a missing server fails the test; on a
laptop without one the PostgreSQL half skips with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.catalog import Catalog
from support.services import PG_HOST, PG_PORT, fresh_pg_database, pg_superuser


@pytest.fixture(scope="session")
def postgres_user() -> str:
    """A superuser-ish role the trust-auth server accepts (``postgres`` or ``root``)."""
    return pg_superuser()


@pytest.fixture
def postgres_url(postgres_user: str) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards (even if connections linger)."""
    with fresh_pg_database(postgres_user, "strata_test") as name:
        yield f"postgresql://{postgres_user}@{PG_HOST}:{PG_PORT}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'project' / '.strata' / 'catalog.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    with Catalog.open(catalog_url) as opened:
        yield opened
