"""A snapshot of what an ``IngestClient`` has done, for ``stats()`` and metrics exporters."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class IngestStats:
    accepted: int  # records taken by ingest()/ingest_many() in this process
    rejected: int  # calls refused for bad input (nothing journaled)
    quarantined: int  # accepted records routed to quarantine for a shape conflict
    replayed: int  # uncommitted records found in the journal from an earlier process
    written: int  # records committed to lake files (tables and quarantine)
    files_written: int
    retried: int  # lake writes that failed and were retried
    journal_backlog: int  # records journaled but not yet committed to the lake
    journal_bytes: int  # bytes of journal segments on disk
    buffered_bytes: int  # bytes of records waiting in the writer's memory
    writer_restarts: int  # times the writer process died and was started again
    last_error: str | None  # the most recent lake error, cleared when a write succeeds

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
