"""Source databases for extractor tests: a fresh PostgreSQL and MariaDB database per test.

Follows SERVICES.md: with ``CI=true`` a missing server fails the test; on a laptop without
one the test skips with a one-line reason naming the server and how to start it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from psycopg import sql

from strata.catalog import Catalog
from strata.lake.storage import LocalStorage

PG_HOST, PG_PORT, PG_USERS = "127.0.0.1", 5432, ("postgres", "root")
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MY_HOST, MY_PORT = "127.0.0.1", 3306
MY_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"


def service_missing(service: str, how_to_start: str, error: object) -> NoReturn:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = f"{service} is not reachable ({detail}); start it with: {how_to_start}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} [CI=true: a missing service fails, never skips]", pytrace=False)
    pytest.skip(message)


def _pg_admin(user: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=user, dbname="postgres", connect_timeout=5, autocommit=True
    )


def _my_admin() -> Any:
    return pymysql.connect(host=MY_HOST, port=MY_PORT, user="root", password="", connect_timeout=5)


@pytest.fixture(scope="session")
def pg_user() -> str:
    last: Exception | None = None
    for user in PG_USERS:
        try:
            with _pg_admin(user):
                return user
        except psycopg.Error as exc:
            last = exc
    service_missing(f"PostgreSQL on {PG_HOST}:{PG_PORT}", PG_START, last)


def _postgres(user: str) -> Iterator[str]:
    name = f"strata_x_{uuid.uuid4().hex}"
    with _pg_admin(user) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _pg_admin(user) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _mariadb() -> Iterator[str]:
    try:
        admin = _my_admin()
    except pymysql.MySQLError as exc:
        service_missing(f"MariaDB on {MY_HOST}:{MY_PORT}", MY_START, exc)
    name = f"strata_x_{uuid.uuid4().hex}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    admin.close()
    try:
        yield f"mysql+pymysql://root@{MY_HOST}:{MY_PORT}/{name}"
    finally:
        admin = _my_admin()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def source_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql":
        yield from _postgres(request.getfixturevalue("pg_user"))
    else:
        yield from _mariadb()


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
