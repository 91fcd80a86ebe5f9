"""Landing the workforce demo into a lake through the ingest SDK, the way services would.

Each (namespace, source service) of the demo gets its own ``IngestClient``, as separate
services would; the summary is read back from the lake itself, so it shows what landed
rather than what was sent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Final

from strata.core.errors import ConfigError
from strata.demo.workforce import generate, plan_tenants
from strata.ingest.client import IngestClient
from strata.ingest.config import IngestConfig
from strata.lake.inventory import LakeInventory, TableInventory, inventory
from strata.lake.storage import LakeStorage, open_lake

PROGRESS_EVERY: Final = 1000
# Records per planned worker, measured over seeds and scales (16-22); a company row each on top.
_RECORDS_PER_WORKER: Final = 19.5

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What one source service sent, from its client's stats."""

    namespace: str
    source_service: str
    records: int
    quarantined: int
    files_written: int


@dataclass(frozen=True, slots=True)
class DemoSummary:
    records: int  # generated and accepted in this run
    sources: tuple[SourceSummary, ...]
    # The demo's tables as the lake holds them now (earlier runs into the same lake included).
    tables: tuple[TableInventory, ...]
    quarantine_tables: tuple[TableInventory, ...]

    @property
    def quarantined(self) -> int:
        return sum(s.quarantined for s in self.sources)


def estimate_records(seed: int = 7, scale: float = 1.0) -> int:
    """About how many records ``generate`` yields (within ~15%), without generating them.

    Counting exactly would mean generating everything twice; a progress bar only needs
    the order of magnitude.
    """
    tenants = plan_tenants(seed, _checked_scale(scale))
    return len(tenants) + round(_RECORDS_PER_WORKER * sum(t.workers for t in tenants))


def land_demo(
    lake: str | LakeStorage,
    journal_dir: str | os.PathLike[str] | None,
    seed: int = 7,
    scale: float = 1.0,
    progress: Progress | None = None,
    *,
    config: IngestConfig | None = None,
) -> DemoSummary:
    """Generate the demo and land it; returns counts read back from the lake."""
    storage = lake if isinstance(lake, LakeStorage) else open_lake(lake)
    records = generate(seed, _checked_scale(scale))
    clients: dict[tuple[str, str], IngestClient] = {}
    sent: dict[tuple[str, str], int] = {}
    tables: set[tuple[str, str]] = set()
    count = 0
    with ExitStack() as stack:  # closing a client flushes it; all close even if one fails
        for item in records:
            key = (item.namespace, item.source_service)
            client = clients.get(key)
            if client is None:
                client = IngestClient(
                    storage,
                    namespace=item.namespace,
                    source_service=item.source_service,
                    journal_dir=journal_dir,
                    config=config,
                )
                clients[key] = stack.enter_context(client)
            client.ingest(item.table, item.tenant, item.record)
            sent[key] = sent.get(key, 0) + 1
            tables.add((item.namespace, item.table))
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
    if progress is not None:
        progress(count)
    sources = tuple(
        SourceSummary(ns, service, sent[(ns, service)], s.quarantined, s.files_written)
        for (ns, service), s in sorted((key, c.stats()) for key, c in clients.items())
    )
    return _summary(count, sources, inventory(storage), tables)


def _summary(
    count: int,
    sources: tuple[SourceSummary, ...],
    inv: LakeInventory,
    tables: set[tuple[str, str]],
) -> DemoSummary:
    """Keep the demo's tables only: the lake may hold other tables in the same namespaces."""
    mine = tuple(t for t in inv.tables if (t.namespace, t.table) in tables)
    return DemoSummary(
        records=count,
        sources=sources,
        tables=tuple(t for t in mine if not t.quarantine),
        quarantine_tables=tuple(t for t in mine if t.quarantine),
    )


def _checked_scale(scale: float) -> float:
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"demo scale must be a positive number, got {scale!r}")
    return scale
