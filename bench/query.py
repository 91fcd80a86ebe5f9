"""Query API benchmark: the same queries through `strata serve` and directly in DuckDB.

Prints one JSON object. A gold Delta table is generated with about ``--gb`` GB of Parquet
for the measured tenant (and a little for another), then each query runs ``--repeat``
times at 1 and at 32 concurrent clients, through the API (a real uvicorn server in a child
process, an API key, HTTP on loopback) and directly in DuckDB over the same files. Targets:
API overhead at most 10% + 5 ms over direct DuckDB (p50), p95 at most 1 s for the
aggregation over the whole tenant at 1 client.

    python bench/query.py [--gb 1.0] [--repeat 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
from sqlglot import exp

from strata.transform.delta_files import commit_files, copy_to_table, output_schema

TENANT = "acme"
ROWS_PER_GB = 20_800_000  # measured for this table's shape (48 bytes a row)

QUERIES = {
    # the whole tenant: a group-by over every row
    "aggregate_all": (
        "select status, count(*) as n, sum(amount) as amount, avg(duration_ms) as ms "
        "from gold.events group by status order by status",
        {},
    ),
    # a filtered aggregate, with a bound parameter
    "aggregate_day": (
        "select kind, count(*) as n, sum(amount) as amount from gold.events "
        "where day = $day group by kind order by kind",
        {"day": "2026-03-01"},
    ),
    # a small lookup, where fixed overheads dominate
    "top_customers": (
        "select customer_id, sum(amount) as amount from gold.events where day = $day "
        "group by customer_id order by amount desc limit 10",
        {"day": "2026-03-02"},
    ),
}

GENERATE = """\
select
    'tenant' as company_id,
    range as event_id,
    (date '2026-01-01' + cast(range % 180 as integer))::varchar as day,
    hash(range, 'c') % 200000 as customer_id,
    ['created', 'paid', 'refunded', 'cancelled'][cast(1 + hash(range, 's') % 4 as bigint)]
        as status,
    ['web', 'app', 'api', 'pos', 'partner'][cast(1 + hash(range, 'k') % 5 as bigint)] as kind,
    round((hash(range, 'a') % 100000) / 100.0, 2) as amount,
    hash(range, 'd') % 5000 as duration_ms,
    md5(cast(range as varchar)) as note
from range({rows})
"""


def make_project(root: Path, tenants: dict[str, int]) -> None:
    """A project whose gold ``events`` table is generated directly (building 1 GB through
    bronze and silver is the transform benchmark's job, not this one's)."""
    (root / "models" / "silver").mkdir(parents=True)
    (root / "models" / "gold").mkdir(parents=True)
    (root / "strata.toml").write_text(
        'name = "bench"\nlake_url = "./lake"\ncatalog_url = "sqlite:///.strata/catalog.db"\n'
        '[serve]\nthreads = 2\nmemory_limit = "1GB"\ntimeout_s = 60\n'
        "scan_budget_mb = 8192\nmax_rows = 100000\n"
    )
    silver = root / "models" / "silver"
    (silver / "raw_events.sql").write_text("select * from bronze.bench.events\n")
    (silver / "raw_events.yml").write_text("primary_key: [company_id, event_id]\n")
    (root / "models" / "gold" / "events.sql").write_text("select * from silver.raw_events\n")
    (root / "models" / "gold" / "events.yml").write_text("materialized: table\n")
    table = root / "lake" / "gold" / "events"
    con = duckdb.connect()
    written = []
    schema = None
    for tenant, rows in tenants.items():
        query = exp.select(
            exp.Star(replace=[exp.alias_(exp.Literal.string(tenant), "company_id")])
        ).from_(exp.maybe_parse(GENERATE.format(rows=rows), dialect="duckdb").subquery("g"))
        schema = output_schema(con, query)
        written += copy_to_table(con, query, table, ["company_id"], schema)
    assert schema is not None
    commit_files(table, schema, ["company_id"], written, overwrite=True)
    con.close()


def tenant_files(root: Path, tenant: str) -> list[str]:
    from deltalake import DeltaTable

    uris: list[str] = DeltaTable(str(root / "lake" / "gold" / "events")).file_uris()
    return [u for u in uris if f"company_id={tenant}/" in u]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def strata(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).with_name("strata")
    out = subprocess.run([str(exe), *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout


def api_key(root: Path) -> str:
    output = strata("keys", "create", "--tenant", TENANT, "--role", "viewer", cwd=root)
    for token in output.split():
        if token.startswith("strata_"):
            return token
    raise SystemExit(f"no key in: {output}")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def measure(run: Callable[[], None], repeat: int, clients: int) -> dict[str, float]:
    """Latency of ``repeat`` calls per client, ``clients`` at a time."""
    samples: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            with lock:
                samples.append(elapsed)

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return percentiles(samples)


def direct_runner(files: list[str]) -> Callable[[str, dict[str, Any]], Callable[[], None]]:
    """Plain DuckDB over the tenant's files: a view named like the API's table, 2 threads."""
    con = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    con.execute("create schema gold")
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con.execute(f"create view gold.events as select * from read_parquet([{listing}])")

    def make(sql: str, params: dict[str, Any]) -> Callable[[], None]:
        def run() -> None:
            con.cursor().sql(sql, params=params).to_arrow_table()

        return run

    return make


def api_runner(base: str, key: str) -> Callable[[str, dict[str, Any]], Callable[[], None]]:
    local = threading.local()

    def make(sql: str, params: dict[str, Any]) -> Callable[[], None]:
        body = {"sql": sql, "parameters": params}

        def run() -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
                )
            response = client.post("/api/v1/analytics/queries:run", json=body)
            if response.status_code != 200:
                raise SystemExit(f"API answered {response.status_code}: {response.text}")

        return run

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="strata-bench-query-"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rows = int(ROWS_PER_GB * args.gb)
    started = time.perf_counter()
    make_project(root, {TENANT: rows, "globex": max(1000, rows // 100)})
    files = tenant_files(root, TENANT)
    tenant_bytes = sum(Path(f).stat().st_size for f in files)
    generated_s = time.perf_counter() - started

    port = free_port()
    key = api_key(root)
    exe = Path(sys.executable).with_name("strata")
    server = subprocess.Popen(
        [str(exe), "serve", "--project", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        direct = direct_runner(files)
        api = api_runner(base, key)
        results: dict[str, Any] = {}
        for name, (sql, params) in QUERIES.items():
            api(sql, params)()  # warm both sides: sandbox built, footers cached
            direct(sql, params)()
            for clients in args.clients:
                repeat = max(2, args.repeat // clients) if clients > 1 else args.repeat
                d = measure(direct(sql, params), repeat, clients)
                a = measure(api(sql, params), repeat, clients)
                allowed = d["p50_ms"] * 1.10 + 5
                results[f"{name}@{clients}"] = {
                    "direct": d,
                    "api": a,
                    "overhead_p50_ms": round(a["p50_ms"] - d["p50_ms"], 2),
                    "allowed_p50_ms": round(allowed, 2),
                    "within_target": a["p50_ms"] <= allowed,
                }
    finally:
        server.terminate()
        server.wait(timeout=30)

    aggregate = results["aggregate_all@1"]["api"]
    report = {
        "tenant_parquet_gb": round(tenant_bytes / 1e9, 3),
        "tenant_rows": rows,
        "generate_s": round(generated_s, 1),
        "queries": results,
        "targets": {
            "overhead": "api p50 <= direct p50 * 1.10 + 5 ms",
            "aggregate_all_p95_ms_max_at_1_client": 1000,
        },
        "aggregate_all_p95_ms_at_1_client": aggregate["p95_ms"],
    }
    print(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
