"""The publish gate between a model's build and its promotion (write, audit, publish).

A builder commits its new Delta version, then asks the gate about it before recording
anything in the catalog (table version, consumed bronze files). A gate that refuses
raises ``PublishBlockedError``; the builder then puts the table back as it was (a Delta restore
to the previous version, or no table at all if this was its first) and re-raises, so the
model fails, its downstream models are skipped, and the next run rebuilds from the same
bronze. What a gate checks is not the models layer's business: ``strata.quality`` supplies
one built from the project's declared checks.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

from deltalake import DeltaTable

from strata.core.logging import fields, get_logger
from strata.transform.errors import TransformError

log = get_logger(__name__)


class PublishBlockedError(TransformError):
    """A gate refused a table version; the message says which checks failed, for whom."""


class PublishGate(Protocol):
    def __call__(self, table: str, path: Path, version: int, before: int | None) -> None:
        """Judge ``version`` of ``table`` (Delta table at ``path``; ``before`` is the version
        readers had). Return to publish it; raise ``PublishBlockedError`` to refuse it."""


def guard(
    gate: PublishGate | None, table: str, path: Path, version: int, before: int | None
) -> None:
    """Ask ``gate`` about a fresh version; if it refuses, roll the table back and re-raise."""
    if gate is None or version == before:
        return
    try:
        gate(table, path, version, before)
    except BaseException:
        roll_back(table, path, before)
        raise


def roll_back(table: str, path: Path, before: int | None) -> None:
    """Put ``path`` back to version ``before``; a table that had none is removed."""
    if before is None:
        shutil.rmtree(path, ignore_errors=True)
    else:
        DeltaTable(str(path)).restore(before)
    log.warning("table version withheld", extra=fields(table=table, restored_to=before))
