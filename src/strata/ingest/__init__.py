"""Landing records in bronze: the embeddable SDK and its background writer."""

from strata.ingest.client import IngestClient
from strata.ingest.config import IngestConfig
from strata.ingest.errors import (
    ClientClosedError,
    FlushTimeoutError,
    InvalidRecordError,
    JournalLockedError,
)
from strata.ingest.stats import IngestStats

__all__ = [
    "ClientClosedError",
    "FlushTimeoutError",
    "IngestClient",
    "IngestConfig",
    "IngestStats",
    "InvalidRecordError",
    "JournalLockedError",
]
