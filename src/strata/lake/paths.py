"""The bronze path scheme for service records (seed 000), kept exactly:

    {namespace}/{table}/tenant={tenant}/year={YYYY}/month={MM}/day={DD}/{uuid}.parquet

Quarantined records (a shape that conflicts with the table's) land beside it under the
reserved table prefix ``_quarantine`` so they are never read as part of the table:

    {namespace}/_quarantine/{table}/tenant={tenant}/year=.../month=.../day=.../{uuid}.parquet

Building and parsing are pure and inverse of each other (property-tested).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Final

from strata.core.errors import Terminal
from strata.core.identifiers import validate_name, validate_tenant

QUARANTINE_DIR: Final = "_quarantine"

_PATH_RE: Final = re.compile(
    r"(?P<namespace>[^/]+)/(?:(?P<quarantine>_quarantine)/)?(?P<table>[^/]+)"
    r"/tenant=(?P<tenant>[^/]+)/year=(?P<year>[0-9]{4})/month=(?P<month>[0-9]{2})/day=(?P<day>[0-9]{2})"
    r"/(?P<file_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.parquet"
)


class InvalidBronzePathError(Terminal, ValueError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"not a bronze record path: {path!r}")


@dataclass(frozen=True, slots=True)
class BronzePartition:
    """One (namespace, table, tenant, day) directory of the lake."""

    namespace: str
    table: str
    tenant: str
    day: dt.date
    quarantine: bool = False

    def __post_init__(self) -> None:
        validate_name(self.namespace, "namespace")
        validate_name(self.table, "table")
        # An int tenant is kept as its text, so a partition equals its own parsed path.
        object.__setattr__(self, "tenant", validate_tenant(self.tenant))

    @property
    def directory(self) -> str:
        table_dir = f"{QUARANTINE_DIR}/{self.table}" if self.quarantine else self.table
        d = self.day
        return (
            f"{self.namespace}/{table_dir}/tenant={self.tenant}"
            f"/year={d.year:04d}/month={d.month:02d}/day={d.day:02d}"
        )

    def file(self, file_id: uuid.UUID) -> BronzeFile:
        return BronzeFile(self, file_id)


@dataclass(frozen=True, slots=True)
class BronzeFile:
    partition: BronzePartition
    file_id: uuid.UUID

    @property
    def path(self) -> str:
        return f"{self.partition.directory}/{self.file_id}.parquet"


def parse_bronze_path(path: str) -> BronzeFile:
    """Inverse of ``BronzeFile.path``; raises ``InvalidBronzePathError`` on anything else."""
    m = _PATH_RE.fullmatch(path)
    if m is None:
        raise InvalidBronzePathError(path)
    try:
        day = dt.date(int(m["year"]), int(m["month"]), int(m["day"]))
        partition = BronzePartition(
            namespace=m["namespace"],
            table=m["table"],
            tenant=m["tenant"],
            day=day,
            quarantine=m["quarantine"] is not None,
        )
    except ValueError as exc:
        raise InvalidBronzePathError(path) from exc
    return BronzeFile(partition, uuid.UUID(m["file_id"]))
