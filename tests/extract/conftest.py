"""Source databases for extractor tests: a fresh PostgreSQL and MariaDB database per test.

Follows SERVICES.md: with ``CI=true`` a missing server fails the test; on a laptop without
one the test skips with a one-line reason naming the server and how to start it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.catalog import Catalog
from strata.lake.storage import LocalStorage
from support.services import (
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    PG_HOST,
    PG_PORT,
    fresh_mariadb_database,
    fresh_pg_database,
    pg_superuser,
)


@pytest.fixture(scope="session")
def pg_user() -> str:
    return pg_superuser()


@pytest.fixture(params=["postgresql", "mariadb"])
def source_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql":
        user = request.getfixturevalue("pg_user")
        with fresh_pg_database(user, "strata_x") as name:
            yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    else:
        with fresh_mariadb_database("strata_x") as name:
            yield f"mysql+pymysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{name}"


@pytest.fixture
def source_engine(source_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(source_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as opened:
        yield opened


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake", fsync=False)
