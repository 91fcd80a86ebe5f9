"""Errors of the metadata catalog.

    CatalogError (Terminal)            the request or the stored state is wrong
    ├── RunNotFoundError               no run with that id
    ├── RunStateError                  the run is not in a state that allows the change
    ├── TableVersionExistsError        that (table, version) is already recorded
    └── CatalogSchemaError             the database schema is newer or foreign to this code
    CatalogUnavailableError (Transient) the database could not be reached or is busy

Messages name the catalog URL with its password masked; never print a raw URL.
"""

from __future__ import annotations

from strata.core.errors import Terminal, Transient


class CatalogError(Terminal):
    """A catalog request that retrying will not fix."""


class CatalogUnavailableError(Transient):
    """The catalog database could not be reached (refused, timed out, locked)."""

    def __init__(self, url: str, cause: str) -> None:
        self.url = url  # already masked by the caller
        self.cause = cause
        super().__init__(f"catalog database {url} is unavailable: {cause}")


class RunNotFoundError(CatalogError, LookupError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r} in the catalog")


class RunStateError(CatalogError):
    def __init__(self, run_id: str, status: str, wanted: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"run {run_id} is {status}; cannot {wanted}")


class TableVersionExistsError(CatalogError):
    def __init__(self, table: str, version: int) -> None:
        self.table = table
        self.version = version
        super().__init__(f"table {table!r} already has version {version} in the catalog")


class CatalogSchemaError(CatalogError):
    """The schema cannot be migrated by this version of Strata (e.g. it is newer)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"catalog database {url} cannot be migrated: {reason}")
