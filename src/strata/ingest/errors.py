"""Errors of the ingest SDK. Bad input is ``Terminal`` and raised at the call site;
lake trouble is ``Transient`` and handled by the background writer, never by the caller."""

from __future__ import annotations

from strata.core.errors import Terminal, Transient


class InvalidRecordError(Terminal, ValueError):
    """A record that cannot be landed: it is rejected before anything is journaled."""

    def __init__(
        self,
        table: str,
        tenant: str,
        reason: str,
        *,
        field: str | None = None,
        index: int | None = None,
    ) -> None:
        self.table = table
        self.tenant = tenant
        self.field = field
        self.index = index
        self.reason = reason
        where = f"table {table!r}, tenant {tenant!r}"
        if index is not None:
            where += f", record #{index}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"rejected record ({where}): {reason}")


class JournalLockedError(Terminal):
    """Another live client owns this journal directory; two writers would corrupt it."""

    def __init__(self, journal_dir: str) -> None:
        self.journal_dir = journal_dir
        super().__init__(
            f"journal directory {journal_dir} is in use by another IngestClient "
            "(give each process its own journal_dir)"
        )


class JournalCorruptError(Terminal):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"journal file {path} is unreadable: {reason}")


class ClientClosedError(Terminal):
    def __init__(self) -> None:
        super().__init__("IngestClient is closed; create a new one to ingest more records")


class FlushTimeoutError(Transient):
    """Records are safe in the journal but not yet in the lake; they land when it recovers."""

    def __init__(self, timeout: float, backlog: int, last_error: str | None) -> None:
        self.timeout = timeout
        self.backlog = backlog
        self.last_error = last_error
        cause = f"; last lake error: {last_error}" if last_error else ""
        super().__init__(
            f"flush did not complete within {timeout:g}s; {backlog} records wait in the "
            f"journal and will land when the lake accepts writes{cause}"
        )


class WriterFailedError(Terminal):
    """The writer process keeps failing; records stay in the journal for the next client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the ingest writer process failed: {reason}")
