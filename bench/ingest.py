"""Ingest benchmark: the SDK against the seed's one-Parquet-file-per-record approach.

Prints one JSON object. Both sides run in this process on the same generated records, so
the ratios hold on a noisy machine even when the absolute times move.

    python bench/ingest.py [--records 1000000] [--baseline-records 3000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from strata.ingest import IngestClient, IngestConfig
from strata.lake.paths import BronzePartition

TABLES = ("profiles", "assignments", "test_results")


def make_records(n: int, tenants: int, seed: int = 1) -> list[tuple[str, str, dict[str, object]]]:
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    names = [f"tenant-{i:03d}" for i in range(tenants)]
    weights = [1 / (i + 1) for i in range(tenants)]  # skewed like real SaaS tenants
    out = []
    for i in range(n):
        tenant = rng.choices(names, weights)[0]
        table = TABLES[i % 3]
        out.append(
            (
                table,
                tenant,
                {
                    "id": i,
                    "company_id": tenant,
                    "worker_rut": f"{rng.randint(5_000_000, 25_000_000)}-{rng.randint(0, 9)}",
                    "project_id": rng.randint(1, 500),
                    "status": rng.choice(("active", "pending", "done")),
                    "score": round(rng.random() * 100, 2),
                    "passed": rng.random() > 0.1,
                    "created_at": base + dt.timedelta(seconds=rng.randint(0, 10_000_000)),
                    "updated_at": base + dt.timedelta(seconds=rng.randint(0, 10_000_000)),
                    "deleted_at": None,
                    "notes": "ok" if rng.random() > 0.5 else None,
                },
            )
        )
    return out


def steady_rate(samples: list[tuple[float, int]], since: float, until: float) -> int | None:
    """Least-squares slope of records committed over time while records keep arriving.

    Commits come in bursts (one per sealed batch), so a slope through every sample is a
    steadier estimate than two end points.
    """
    window = [(t, w) for t, w in samples if since <= t <= until]
    if len(window) < 8 or window[-1][0] - window[0][0] < 2.0:
        return None  # the run was too short to have a steady state
    n = len(window)
    mean_t = sum(t for t, _ in window) / n
    mean_w = sum(w for _, w in window) / n
    cov = sum((t - mean_t) * (w - mean_w) for t, w in window)
    var = sum((t - mean_t) ** 2 for t, _ in window)
    return round(cov / var)


def percentile(sorted_values: list[int], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] / 1000.0


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*.parquet") if not p.name.startswith("."))


def bench_sdk(
    records: list[tuple[str, str, dict[str, object]]], work: Path, batch: bool
) -> dict[str, float]:
    lake = work / ("lake-many" if batch else "lake")
    client = IngestClient(
        str(lake),
        namespace="bench",
        source_service="bench",
        journal_dir=work / "journal",
        # Sealing every second lets the writer work while records arrive, as it does in a
        # long-running service; with the 10 s default a 5 s run is one burst then a flush.
        config=IngestConfig(batch_max_age_s=1.0),
    )
    perf = time.perf_counter_ns
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    if batch:  # a service calling ingest_many has its batch in hand: not part of the timing
        for table, tenant, rec in records:
            groups.setdefault((table, tenant), []).append(rec)
    samples: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample() -> None:  # committed records over time, for the steady-state rate
        while not sampling.wait(0.1):
            samples.append((time.perf_counter(), client.stats().written))

    sampler = threading.Thread(target=sample, daemon=True)
    gc.collect()
    gc.disable()  # a full collection pause is real but not the SDK's; both sides run without it
    try:
        latencies = [0] * len(records)
        start = time.perf_counter()
        sampler.start()
        if batch:
            for (table, tenant), recs in groups.items():
                for i in range(0, len(recs), 1000):
                    client.ingest_many(table, tenant, recs[i : i + 1000])
        else:
            ingest = client.ingest
            for i, (table, tenant, rec) in enumerate(records):
                t0 = perf()
                ingest(table, tenant, rec)
                latencies[i] = perf() - t0
        enqueued_at = time.perf_counter()
        enqueued = enqueued_at - start
        client.flush()
        total = time.perf_counter() - start
        sampling.set()
        sampler.join()
    finally:
        gc.enable()
    stats = client.stats()
    client.close()
    files = count_files(lake)
    out = {
        "records": len(records),
        # First record accepted to last record committed, including the final drain.
        "sustained_records_per_s": round(len(records) / total),
        # Commit rate while records keep arriving (after the first batches age out).
        "steady_commit_records_per_s": steady_rate(samples, start + 1.5, enqueued_at),
        "enqueue_records_per_s": round(len(records) / enqueued),
        "files": files,
        "files_per_10k_records": round(files * 10_000 / len(records), 3),
        "written": stats.written,
    }
    if not batch:
        latencies.sort()
        out |= {
            "ingest_p50_us": percentile(latencies, 0.50),
            "ingest_p99_us": percentile(latencies, 0.99),
            "ingest_p999_us": percentile(latencies, 0.999),
            "ingest_max_us": latencies[-1] / 1000.0,
        }
    return out


def bench_seed_baseline(
    records: list[tuple[str, str, dict[str, object]]], work: Path
) -> dict[str, float]:
    """Seed 000's pseudocode: one Parquet file per record, written by the background task."""
    lake = work / "seed-lake"
    latencies = []
    start = time.perf_counter()
    for table, tenant, rec in records:
        t0 = time.perf_counter_ns()
        now = dt.datetime.now(dt.UTC)
        path = lake / BronzePartition("bench", table, tenant, now.date()).file(uuid.uuid4()).path
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist([{**rec, "ingested_at": now, "source_service": "bench"}]), path
        )
        latencies.append(time.perf_counter_ns() - t0)
    total = time.perf_counter() - start
    latencies.sort()
    files = count_files(lake)
    return {
        "records": len(records),
        "sustained_records_per_s": round(len(records) / total),
        "per_record_write_p50_us": percentile(latencies, 0.50),
        "per_record_write_p99_us": percentile(latencies, 0.99),
        "files": files,
        "files_per_10k_records": round(files * 10_000 / len(records), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--baseline-records", type=int, default=3_000)
    parser.add_argument("--tenants", type=int, default=50)
    args = parser.parse_args()
    records = make_records(args.records, args.tenants)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    try:
        sdk = bench_sdk(records, work, batch=False)
        sdk_many = bench_sdk(records, work, batch=True)
        seed = bench_seed_baseline(records[: args.baseline_records], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "ingest",
        "sdk_config": "IngestConfig(batch_max_age_s=1.0), other settings default",
        "python": sys.version.split()[0],
        "sdk_ingest": sdk,
        "sdk_ingest_many": sdk_many,
        "baseline_seed_file_per_record": seed,
        "ratios": {
            "throughput_vs_baseline": round(
                sdk["sustained_records_per_s"] / seed["sustained_records_per_s"], 1
            ),
            "fewer_files_factor": round(
                seed["files_per_10k_records"] / max(sdk["files_per_10k_records"], 1e-9), 1
            ),
        },
        "targets": {
            "ingest_p99_us_max": 20,
            "sustained_records_per_s_min": 250_000,
            "fewer_files_factor_min": 100,
            "met": {
                "p99": sdk["ingest_p99_us"] <= 20,
                "sustained_ingest": sdk["sustained_records_per_s"] >= 250_000,
                "sustained_ingest_many": sdk_many["sustained_records_per_s"] >= 250_000,
                "steady_ingest_many": (sdk_many["steady_commit_records_per_s"] or 0) >= 250_000,
                "files": seed["files_per_10k_records"] / max(sdk["files_per_10k_records"], 1e-9)
                >= 100,
            },
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
