"""The real services the tests talk to (SERVICES.md), in one place.

With ``CI=true`` a missing service fails the test; elsewhere the test skips. Either way the
reason is one line naming the service and the command that starts it.

PostgreSQL and MariaDB tests each get a database of their own from ``fresh_pg_database`` /
``fresh_mariadb_database``, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USERS = ("postgres", "root")
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

MARIADB_HOST = "127.0.0.1"
MARIADB_PORT = 3306
MARIADB_USER = "root"
MARIADB_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_START = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"

NATS_URL = "nats://127.0.0.1:4222"
NATS_START = (
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
    "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"
)


def service_missing(service: str, how_to_start: str, error: object) -> NoReturn:
    """Fail in CI, skip elsewhere, with one line naming the service and how to start it."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = f"{service} is not reachable ({detail}); start it with: {how_to_start}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} [CI=true: a missing service fails, never skips]", pytrace=False)
    pytest.skip(message)


# -- PostgreSQL ---------------------------------------------------------------------------


def pg_admin(user: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the ``postgres`` database as ``user``."""
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=user, dbname="postgres", connect_timeout=5, autocommit=True
    )


def pg_superuser() -> str:
    """The first role of ``PG_USERS`` the trust-auth server accepts; else the service is missing."""
    last: Exception | None = None
    for user in PG_USERS:
        try:
            with pg_admin(user):
                return user
        except psycopg.Error as exc:
            last = exc
    service_missing(f"PostgreSQL on {PG_HOST}:{PG_PORT}", PG_START, last)


@contextmanager
def fresh_pg_database(user: str, prefix: str) -> Iterator[str]:
    """A new database named ``{prefix}_<uuid>``, dropped afterwards even if connections linger."""
    name = f"{prefix}_{uuid.uuid4().hex}"
    with pg_admin(user) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with pg_admin(user) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- MariaDB ------------------------------------------------------------------------------


def mariadb_admin() -> Any:
    """A connection to the MariaDB server as its passwordless ``root``."""
    return pymysql.connect(
        host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, password="", connect_timeout=5
    )


@contextmanager
def fresh_mariadb_database(prefix: str) -> Iterator[str]:
    """A new database named ``{prefix}_<uuid>``, dropped afterwards; else the service is missing."""
    try:
        admin = mariadb_admin()
    except pymysql.MySQLError as exc:
        service_missing(f"MariaDB on {MARIADB_HOST}:{MARIADB_PORT}", MARIADB_START, exc)
    name = f"{prefix}_{uuid.uuid4().hex}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
    finally:
        admin.close()
    try:
        yield name
    finally:
        admin = mariadb_admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()
