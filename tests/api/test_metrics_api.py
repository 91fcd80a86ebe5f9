"""Metrics through the API: the registry listing, computations checked against numbers
worked out here from the fixture's rows, tenant isolation, and refusing to start when a
metric changed under a registered version."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from api_helpers import (
    ENV,
    METRICS,
    SECRET,
    Keys,
    TestClient,
    bearer,
    serve,
)
from typer.testing import CliRunner

from strata.api.app import create_app
from strata.catalog.metrics import MetricVersionConflict
from strata.cli import app as cli

METRICS_PATH = "/api/v1/analytics/metrics"

# The fixture's assignments, as the helper lands them: (tenant, role, status, hours, start
# date, the worker's job title or None where no worker matches).
ROWS = [
    ("acme", "lead", "open", 4.0, "2024-03-01", "driver"),
    ("acme", "crew", "open", 3.5, "2024-03-15", "cook"),
    ("acme", "crew", "open", 8.0, "2024-04-15", None),
    ("globex", SECRET, "open", 99.0, "2024-03-01", SECRET),
]


def compute(client: TestClient, token: str, key: str, **body: Any) -> Any:
    payload = {"start": "2024-01-01", "end": "2024-12-31", "grain": "month", **body}
    return client.post(f"{METRICS_PATH}/{key}:compute", json=payload, headers=bearer(token))


def expected_counts(tenant: str, by: int | None) -> dict[tuple[str, ...], int]:
    """Assignments per (month[, column ``by``]) of ``tenant``, counted here."""
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    for row in ROWS:
        if row[0] == tenant:
            month = row[4][:8] + "01"
            counts[(month,) if by is None else (month, row[by])] += 1  # type: ignore[index]
    return dict(counts)


def expected_share(tenant: str, months: bool) -> dict[str, float]:
    """Lead hours over all hours per period: a ratio of the sums, not a mean of ratios."""
    lead: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    for t, role, _, hours, day, _ in ROWS:
        if t == tenant:
            period = day[:8] + "01" if months else day[:4] + "-01-01"
            total[period] += hours
            lead[period] += hours if role == "lead" else 0.0
    return {p: lead[p] / total[p] for p in total}


# -- listing -------------------------------------------------------------------------------


def test_list_gives_each_metrics_latest_version(client: TestClient, keys: Keys) -> None:
    response = client.get(METRICS_PATH, headers=bearer(keys.acme_viewer))
    assert response.status_code == 200
    listed = {m["key"]: m for m in response.json()["metrics"]}
    assert sorted(listed) == sorted(METRICS)
    share = listed["lead_hours_share"]
    assert share["version"] == 1
    assert share["type"] == "ratio"
    assert share["explore"] == "assignments"
    assert share["time_dimension"] == "start_date"
    assert share["grains"] == ["day", "month", "year"]
    assert share["dimensions"] == ["job_title", "role"]
    assert share["freshness_slo_s"] == 7200
    assert share["description"] == "Share of the hours worked by leads."
    assert listed["assignment_count"]["owner"] == "ops"
    assert listed["assignment_count"]["freshness_slo_s"] is None


def test_list_one_key_gives_all_its_versions(client: TestClient, keys: Keys) -> None:
    response = client.get(
        METRICS_PATH, params={"key": "assignment_count"}, headers=bearer(keys.acme_viewer)
    )
    assert [m["version"] for m in response.json()["metrics"]] == [1]
    missing = client.get(METRICS_PATH, params={"key": "nope"}, headers=bearer(keys.acme_viewer))
    assert missing.status_code == 404
    assert client.get(METRICS_PATH).status_code == 401


def test_definitions_are_the_same_for_the_second_tenant(client: TestClient, keys: Keys) -> None:
    acme = client.get(METRICS_PATH, headers=bearer(keys.acme_viewer)).json()
    globex = client.get(METRICS_PATH, headers=bearer(keys.globex_viewer)).json()
    assert acme == globex


# -- computing -----------------------------------------------------------------------------


def test_count_by_month_and_role_matches_the_rows(client: TestClient, keys: Keys) -> None:
    response = compute(client, keys.acme_viewer, "assignment_count", group_by=["role"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metric"] == {"key": "assignment_count", "version": 1}
    assert body["grain"] == "month"
    assert [c["name"] for c in body["columns"]] == ["period", "role", "value"]
    got = {(p, r): v for p, r, v in body["rows"]}
    assert got == expected_counts("acme", 1)
    assert body["freshness"]["status"] == "fresh"
    assert body["freshness"]["slo_s"] == 86400
    assert body["freshness"]["lag_s"] >= 0
    assert body["freshness"]["last_refresh"] is not None
    assert body["elapsed_ms"] > 0


def test_ratio_is_a_ratio_of_sums(client: TestClient, keys: Keys) -> None:
    monthly = compute(client, keys.acme_viewer, "lead_hours_share").json()
    assert dict(monthly["rows"]) == pytest.approx(expected_share("acme", True))
    yearly = compute(client, keys.acme_viewer, "lead_hours_share", grain="year").json()
    assert dict(yearly["rows"]) == pytest.approx(expected_share("acme", False))
    assert yearly["rows"][0][1] == pytest.approx(4.0 / 15.5)  # not the mean of 0.53 and 0
    assert yearly["freshness"]["slo_s"] == 7200  # the metric's own SLO


def test_filters_narrow_the_rows(client: TestClient, keys: Keys) -> None:
    crew = compute(
        client,
        keys.acme_viewer,
        "assignment_count",
        grain="year",
        filters=[{"dimension": "role", "op": "eq", "values": ["crew"]}],
    ).json()
    assert crew["rows"] == [["2024-01-01", 2]]
    not_driver = compute(
        client,
        keys.acme_viewer,
        "assignment_count",
        grain="year",
        filters=[{"dimension": "job_title", "op": "ne", "values": ["driver"]}],
    ).json()
    assert not_driver["rows"] == [["2024-01-01", 2]]  # cook, and the row with no worker


def test_the_second_tenant_computes_over_its_own_rows_only(client: TestClient, keys: Keys) -> None:
    globex = compute(client, keys.globex_viewer, "assignment_count", group_by=["role"]).json()
    assert {(p, r): v for p, r, v in globex["rows"]} == expected_counts("globex", 1)
    acme = compute(client, keys.acme_viewer, "assignment_count", group_by=["job_title"])
    assert SECRET not in acme.text
    share = compute(client, keys.globex_viewer, "lead_hours_share").json()
    assert share["rows"] == [["2024-03-01", 0.0]]
    # a tenant's caller cannot ask for another tenant
    other = compute(client, keys.acme_viewer, "assignment_count", tenant="globex")
    assert other.status_code == 403


def test_platform_admin_names_the_tenant(client: TestClient, keys: Keys) -> None:
    missing = compute(client, keys.platform, "assignment_count")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "tenant_required"
    named = compute(client, keys.platform, "assignment_count", tenant="globex", grain="year")
    assert named.json()["rows"] == [["2024-01-01", 1]]


@pytest.mark.parametrize(
    ("key", "body", "status", "words"),
    [
        ("lead_hours_share", {"grain": "week"}, 400, "has no grain 'week'"),
        ("assignment_count", {"group_by": ["hours"]}, 400, "has no dimension 'hours'"),
        (
            "assignment_count",
            {"filters": [{"dimension": "worker_id", "op": "eq", "values": ["1"]}]},
            400,
            "has no dimension 'worker_id'",
        ),
        ("assignment_count", {"start": "2024-05-01", "end": "2024-04-01"}, 400, "is after"),
        ("assignment_count", {"start": "May"}, 400, "start"),
        ("assignment_count", {"version": 2}, 404, "version 2"),
        ("no_such_metric", {}, 404, "no metric"),
        ("Bad-Key", {}, 404, "no metric"),
        ("assignment_count", {"sql": "select 1"}, 400, "sql"),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(
    client: TestClient, keys: Keys, key: str, body: dict[str, Any], status: int, words: str
) -> None:
    response = compute(client, keys.acme_viewer, key, **body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_a_pinned_version_computes(client: TestClient, keys: Keys) -> None:
    response = compute(client, keys.acme_viewer, "assignment_count", version=1, grain="year")
    assert response.json()["metric"] == {"key": "assignment_count", "version": 1}


# -- start-up ------------------------------------------------------------------------------


def _changed_copy(project: Path, tmp_path: Path) -> Path:
    """The project (its catalog has the metrics registered) with assignment_count changed
    but still version 1."""
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    path = copy / "metrics" / "assignment_count.yml"
    path.write_text(
        path.read_text().replace("measure: {agg: count}", "measure: {agg: sum, expr: hours}")
    )
    return copy


def test_a_changed_definition_under_a_registered_version_stops_the_server(
    project: Path, client: TestClient, tmp_path: Path
) -> None:
    copy = _changed_copy(project, tmp_path)
    with pytest.raises(MetricVersionConflict, match="'assignment_count' version 1"), serve(copy):
        pass
    # strata serve says it in one line, exit code 2, before listening
    result = CliRunner().invoke(cli, ["serve", "--project", str(copy), "--port", "1"], env=ENV)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "metric 'assignment_count' version 1 is already registered" in lines[0]


def test_a_broken_metric_file_stops_create_app(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "broken"
    shutil.copytree(project, copy)
    (copy / "metrics" / "lead_hours_share.yml").write_text(
        METRICS["lead_hours_share"].replace("expr: hours}", "expr: no_such_column}")
    )
    with pytest.raises(Exception, match="unknown column 'no_such_column'"):
        create_app(copy, environ=ENV)
