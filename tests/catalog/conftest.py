"""Catalog fixtures: every test runs against a SQLite file and a fresh PostgreSQL database.

PostgreSQL follows SERVICES.md: with ``CI=true`` a missing server fails the test; on a
laptop without one the PostgreSQL half skips with a one-line reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from strata.catalog import Catalog

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USERS = ("postgres", "root")
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def service_missing(service: str, how_to_start: str, error: object) -> NoReturn:
    """Fail in CI, skip elsewhere, with one line naming the service and how to start it."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = f"{service} is not reachable ({detail}); start it with: {how_to_start}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} [CI=true: a missing service fails, never skips]", pytrace=False)
    pytest.skip(message)


def _admin_connect(user: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=user,
        dbname="postgres",
        connect_timeout=5,
        autocommit=True,
    )


@pytest.fixture(scope="session")
def postgres_user() -> str:
    """A superuser-ish role the trust-auth server accepts (``postgres`` or ``root``)."""
    last_error: Exception | None = None
    for user in PG_USERS:
        try:
            with _admin_connect(user):
                return user
        except psycopg.Error as exc:
            last_error = exc
    service_missing(f"PostgreSQL on {PG_HOST}:{PG_PORT}", PG_START, last_error)


@pytest.fixture
def postgres_url(postgres_user: str) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards (even if connections linger)."""
    name = f"strata_test_{uuid.uuid4().hex}"
    with _admin_connect(postgres_user) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://{postgres_user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connect(postgres_user) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


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
