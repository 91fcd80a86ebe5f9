"""Where the catalog lives: a SQLite file in the project by default, PostgreSQL by URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from strata.core.errors import ConfigError

ENV_VAR: Final = "STRATA_CATALOG_URL"
DEFAULT_RELATIVE_PATH: Final = Path(".strata") / "catalog.db"

# Plain ``postgresql://`` would pick psycopg2, which Strata does not install.
_DRIVERS: Final = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


@dataclass(frozen=True, slots=True, repr=False)
class CatalogConfig:
    """The catalog database URL (``sqlite:///...`` or ``postgresql://...``).

    A relative SQLite path is taken relative to the project folder when built through
    ``for_project``/``from_env``, so the catalog does not move with the working directory.
    """

    url: str

    def __post_init__(self) -> None:
        engine_url(self.url)  # fail at the edge, not at first use

    def __repr__(self) -> str:
        return f"CatalogConfig(url={self.redacted_url!r})"

    @property
    def redacted_url(self) -> str:
        return redact(self.url)

    @classmethod
    def for_project(cls, project_dir: str | os.PathLike[str]) -> CatalogConfig:
        """The default: ``<project>/.strata/catalog.db``."""
        path = Path(project_dir).resolve() / DEFAULT_RELATIVE_PATH
        return cls(URL.create("sqlite", database=str(path)).render_as_string())

    @classmethod
    def from_env(
        cls,
        project_dir: str | os.PathLike[str] = ".",
        environ: Mapping[str, str] | None = None,
    ) -> CatalogConfig:
        """``$STRATA_CATALOG_URL`` if set, else the project default."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_VAR, "").strip()
        if not raw:
            return cls.for_project(project_dir)
        return cls(_anchor_sqlite(raw, Path(project_dir)))


def engine_url(url: str) -> URL:
    """Parse ``url`` into the SQLAlchemy URL Strata connects with (psycopg 3 for PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"catalog URL {redact(url)!r} is not a database URL") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"catalog URL {redact(url)!r}: unsupported database {parsed.drivername!r} "
            "(use sqlite:///path/catalog.db or postgresql://user@host/db)"
        )
    return parsed.set(drivername=driver)


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``; safe for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable catalog URL>"
    return parsed.render_as_string(hide_password=True)


def _anchor_sqlite(url: str, project_dir: Path) -> str:
    parsed = engine_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    anchored = parsed.set(database=str(project_dir.resolve() / database))
    return anchored.render_as_string(hide_password=False)
