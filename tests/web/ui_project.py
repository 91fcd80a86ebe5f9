"""A small built project for the browser test: assignments over six months, two metrics and a
file dashboard with one widget of each type, and API keys for two tenants.

acme has 48 assignments from January to June 2024 in four roles; globex has a few whose
role is ``SECRET``, so finding it on acme's page is a leak. The lake and catalog are the
project's own (``./lake``, SQLite under ``.strata``), as in ``tests/api``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from strata.catalog.store import Catalog
from strata.lake.paths import BronzePartition
from strata.transform.runner import run_project
from strata.transform.scaffold import init_project
from support.fixture_models import write_assignment_models

SECRET = "zq-globex-secret"
T0 = dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC)
START, END = "2024-01-01", "2024-06-30"  # the range the page is opened with
ROLES = ("crew", "lead", "driver", "cook")
STATUSES = ("open", "filled", "completed")
DASHBOARD_ID = "file-operations"  # a file dashboard's id is "file-<file name>"

_HOURS = """\
key: assignment_hours
version: 1
description: Hours of the assignments starting in the period.
explore: assignments
type: simple
measure: {agg: sum, expr: hours}
time_dimension: start_date
grains: [day, week, month]
dimensions: [role, status]
freshness_slo: 1d
"""
_COUNT = """\
key: assignment_count
version: 1
description: Assignments starting in the period.
explore: assignments
type: simple
measure: {agg: count, expr: assignment_id}
time_dimension: start_date
grains: [day, week, month]
dimensions: [role, status]
freshness_slo: 1d
"""
_DASHBOARD = f"""\
title: Operations
description: Assignments and their hours, by role and status.
widgets:
  - title: Hours worked
    type: kpi
    metric: assignment_hours
    grain: month
    range: {START}..{END}
  - title: Assignments
    type: kpi
    metric: assignment_count
    grain: month
    range: {START}..{END}
  - title: Hours by month and role
    type: timeseries
    metric: assignment_hours
    grain: month
    group_by: [role]
    range: {START}..{END}
  - title: Hours by role
    type: breakdown
    metric: assignment_hours
    grain: month
    group_by: [role]
    range: {START}..{END}
  - title: Assignment funnel
    type: funnel
    metric: assignment_count
    grain: month
    group_by: [status]
    filters: [{{dimension: status, op: in, values: [open, filled, completed]}}]
    range: {START}..{END}
  - title: Hours by role and month
    type: heatmap
    metric: assignment_hours
    grain: month
    group_by: [role]
    range: {START}..{END}
"""


def _profile(id_: str, company: str, title: str) -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": company,
        "rut": "1-9",
        "first_name": f"Name{id_}",
        "last_name": "Doe",
        "email": f"w{id_}@example.com",
        "phone": None,
        "job_title": title,
        "status": "active",
        "hired_on": "2023-06-01",
        "created_at": "2023-06-01 10:00:00",
        "updated_at": "2023-06-01 10:00:00",
        "deleted_at": None,
    }


def _assignment(
    id_: str, company: str, worker: str, role: str, status: str, hours: float, day: dt.date
) -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": company,
        "profile_id": worker,
        "role": role,
        "status": status,
        "hours": hours,
        "start_date": day.isoformat(),
        "updated_at": f"{day.isoformat()} 08:00:00",
        "deleted_at": None,
    }


def _bronze(lake: Path, table: str, tenant: str, rows: list[dict[str, Any]]) -> None:
    rel = BronzePartition("wfm", table, tenant, T0.date()).file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{**r, "ingested_at": T0} for r in rows]), lake / rel)


def _acme_assignments() -> list[dict[str, Any]]:
    """Eight a month, January to June: more of them, and longer, as the months go on."""
    rows = []
    for month in range(1, 7):
        for i in range(8):
            role = ROLES[i % len(ROLES)]
            # Fewer filled than open, fewer completed than filled: a funnel.
            status = STATUSES[0 if i < 4 else 1 if i < 7 else 2]
            hours = 2.0 + month + 1.5 * (i % len(ROLES))
            day = dt.date(2024, month, 1 + 3 * i)
            worker = str(1 + i % 4)
            rows.append(_assignment(f"a{month}-{i}", "acme", worker, role, status, hours, day))
    return rows


def build_ui_project(base: Path) -> Path:
    root = init_project(base / "proj", "proj")
    lake = root / "lake"
    titles = ("driver", "cook", "crew lead", "crew")
    _bronze(
        lake, "profiles", "acme", [_profile(str(i + 1), "acme", t) for i, t in enumerate(titles)]
    )
    _bronze(lake, "profiles", "globex", [_profile("g0", "globex", SECRET)])
    _bronze(lake, "assignments", "acme", _acme_assignments())
    globex = [
        _assignment(f"g{i}", "globex", "g0", SECRET, "open", 99.0, dt.date(2024, 3, 1 + i))
        for i in range(3)
    ]
    _bronze(lake, "assignments", "globex", globex)
    write_assignment_models(root)
    (root / "metrics" / "assignment_hours.yml").write_text(_HOURS)
    (root / "metrics" / "assignment_count.yml").write_text(_COUNT)
    (root / "dashboards" / "operations.yml").write_text(_DASHBOARD)
    summary = run_project(root)
    assert not summary.failed, summary.failed
    return root


@dataclass(frozen=True)
class Keys:
    acme: str
    globex: str


def create_keys(root: Path) -> Keys:
    with Catalog.open(f"sqlite:///{root / '.strata' / 'catalog.db'}") as catalog:
        return Keys(
            acme=catalog.create_key("acme", "viewer")[1],
            globex=catalog.create_key("globex", "viewer")[1],
        )


def expected_acme_hours() -> float:
    return sum(r["hours"] for r in _acme_assignments())
