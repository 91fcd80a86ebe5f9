"""Settings of the ingest SDK, resolved once and passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal

from strata.core.errors import ConfigError

Compression = Literal["zstd", "snappy", "gzip", "lz4", "none"]

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """How the background writer batches, bounds memory and retries.

    A partition (table, tenant, day) is written as one Parquet file when it reaches
    ``batch_max_records`` or ``batch_max_bytes`` (JSON size), or when its oldest record is
    ``batch_max_age_s`` old. ``memory_limit_bytes`` caps what waits in memory; past it new
    records stay only in the on-disk journal until the writer catches up.
    """

    batch_max_records: int = 250_000
    batch_max_bytes: int = 64 * MiB
    batch_max_age_s: float = 10.0
    memory_limit_bytes: int = 256 * MiB
    segment_bytes: int = 64 * MiB
    # fsync the journal at most this often (and before every batch is sealed); None leaves
    # it to the OS: records then survive a process crash but not a power loss.
    fsync_interval_s: float | None = 1.0
    retry_initial_s: float = 0.1
    retry_max_s: float = 30.0
    # Snappy: Parquet's common default (Spark, Arrow), cheapest to write; zstd is smaller.
    compression: Compression = "snappy"

    def __post_init__(self) -> None:
        positive = (
            "batch_max_records",
            "batch_max_bytes",
            "batch_max_age_s",
            "memory_limit_bytes",
            "retry_initial_s",
            "retry_max_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"ingest setting {name} must be > 0, got {getattr(self, name)!r}")
        if not 1 * MiB <= self.segment_bytes <= 1024 * MiB:
            raise ConfigError(
                f"ingest setting segment_bytes must be 1 MiB..1 GiB, got {self.segment_bytes}"
            )
        if self.fsync_interval_s is not None and self.fsync_interval_s < 0:
            raise ConfigError("ingest setting fsync_interval_s must be >= 0 or None")
        if self.compression not in ("zstd", "snappy", "gzip", "lz4", "none"):
            raise ConfigError(
                "ingest setting compression must be zstd|snappy|gzip|lz4|none, "
                f"got {self.compression!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestConfig:
        """Defaults overridden by ``STRATA_INGEST_<FIELD>`` variables (``..._BATCH_MAX_AGE_S``)."""
        env = os.environ if environ is None else environ
        overrides: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"STRATA_INGEST_{f.name.upper()}")
            if raw is None:
                continue
            try:
                if f.name == "compression":
                    overrides[f.name] = raw
                elif f.name == "fsync_interval_s":
                    overrides[f.name] = None if raw.lower() in ("", "none", "off") else float(raw)
                elif f.name.endswith("_s"):
                    overrides[f.name] = float(raw)
                else:
                    overrides[f.name] = int(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"STRATA_INGEST_{f.name.upper()}={raw!r} is not a number"
                ) from exc
        return replace(cls(), **overrides)  # type: ignore[arg-type]
