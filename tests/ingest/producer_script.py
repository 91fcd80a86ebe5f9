"""A stand-in service process for the crash tests: ingests records, then waits to be killed.

Run as ``python producer_script.py LAKE JOURNAL SWITCH COUNT ACK`` (ACK = 1 prints each id
after ``ingest`` returned for it, which is what the caller may rely on).
"""

from __future__ import annotations

import sys
import time

from strata.ingest import IngestClient, IngestConfig
from strata.lake.faults import FaultInjectingStorage
from strata.lake.storage import LocalStorage


def main() -> None:
    lake, journal, switch, count, ack = sys.argv[1:6]
    storage = FaultInjectingStorage(LocalStorage(lake), switch, delay_s=0.02)
    client = IngestClient(
        storage,
        namespace="crash",
        source_service="svc",
        journal_dir=journal,
        config=IngestConfig(batch_max_age_s=0.05, batch_max_records=700, segment_bytes=1 << 20),
    )
    out = sys.stdout
    for i in range(int(count)):
        client.ingest("events", f"t{i % 7}", {"id": i, "body": "x" * 40})
        if ack == "1":
            out.write(f"{i}\n")
            out.flush()
    out.write("done\n")
    out.flush()
    time.sleep(120)  # killed by the test long before this


if __name__ == "__main__":
    main()
