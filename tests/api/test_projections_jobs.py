"""Projections (what is exposed, how fresh), refreshes as background jobs, and job status,
each with its second-tenant test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_helpers import (
    PROJECTIONS,
    SECRET,
    Keys,
    TestClient,
    bearer,
    build_project,
    catalog_url,
    create_keys,
    job_path,
    query,
    refresh,
    serve,
    wait_for_job,
)

from strata.catalog.store import Catalog


def projections(client: TestClient, token: str, **params: str) -> dict[str, dict[str, Any]]:
    response = client.get(PROJECTIONS, headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    return {p["key"]: p for p in response.json()["projections"]}


def test_projections_list_everything_exposed(client: TestClient, keys: Keys) -> None:
    listed = projections(client, keys.acme_viewer)
    assert sorted(listed) == [
        "explore.assignments",
        "explore.workers",
        "gold.broken",
        "gold.dim_workers",
        "gold.fct_assignments",
        "silver.profiles",
    ]
    workers = listed["gold.dim_workers"]
    assert (workers["layer"], workers["version"], workers["status"]) == ("gold", 0, "fresh")
    assert workers["freshness_slo_s"] == 86400
    assert 0 <= workers["lag_s"] < 86400
    assert workers["last_refresh"] is not None
    assert listed["gold.fct_assignments"]["freshness_slo_s"] == 3600  # [serve.freshness]
    broken = listed["gold.broken"]
    assert (broken["status"], broken["version"], broken["rows"]) == ("never_built", None, None)
    assert (broken["last_refresh"], broken["lag_s"]) == (None, None)
    explore = listed["explore.assignments"]
    assert (explore["layer"], explore["status"], explore["rows"]) == ("explore", "fresh", None)


def test_projection_rows_are_the_callers(client: TestClient, keys: Keys) -> None:
    acme = projections(client, keys.acme_viewer)
    globex = projections(client, keys.globex_viewer)
    admin = projections(client, keys.platform)
    rows = {k: (acme[k]["rows"], globex[k]["rows"], admin[k]["rows"]) for k in acme}
    assert rows["gold.dim_workers"] == (2, 3, 5)
    assert rows["gold.fct_assignments"] == (3, 1, 4)
    assert rows["silver.profiles"] == (2, 3, 5)
    assert projections(client, keys.platform, tenant="globex")["gold.dim_workers"]["rows"] == 3


def test_projections_of_another_tenant_are_forbidden(client: TestClient, keys: Keys) -> None:
    response = client.get(
        PROJECTIONS, headers=bearer(keys.acme_viewer), params={"tenant": "globex"}
    )
    assert response.status_code == 403
    own = client.get(PROJECTIONS, headers=bearer(keys.acme_viewer), params={"tenant": "acme"})
    assert own.json()["tenant"] == "acme"


def test_refresh_runs_in_the_background(client: TestClient, keys: Keys, project: Path) -> None:
    before = projections(client, keys.acme_viewer)["gold.dim_workers"]["version"]
    response = refresh(client, keys.acme_admin, "gold.dim_workers")
    assert response.status_code == 202
    accepted = response.json()
    job_id = accepted["job_id"]
    assert accepted["projection"] == "gold.dim_workers"
    assert accepted["status_url"] == job_path(job_id)
    with Catalog.open(catalog_url(project)) as catalog:
        run = catalog.get_run(job_id)
    assert run.params == {
        "projection": "gold.dim_workers",
        "select": "+dim_workers",
        "tenant": "acme",
    }
    assert run.triggered_by == keys.acme_admin.split("_")[1]  # the key id, never the secret

    job = wait_for_job(client, keys.acme_viewer, job_id)
    assert job["status"] == "succeeded"
    assert job["projection"] == "gold.dim_workers"
    assert job["error"] is None
    assert job["duration_s"] >= 0
    assert [(s["model"], s["status"]) for s in job["steps"]] == [
        ("profiles", "succeeded"),
        ("dim_workers", "succeeded"),
    ]
    assert job["steps"][1]["rows_out"] == 2  # acme's refresh rebuilt acme's rows only
    # The sandboxes serve the new version; the rows are the same, globex's untouched.
    after = projections(client, keys.acme_viewer)["gold.dim_workers"]
    assert after["version"] == before + 1
    count = "select count(*) from gold.dim_workers"
    assert query(client, keys.acme_viewer, count).json()["rows"] == [[2]]
    assert query(client, keys.globex_viewer, count).json()["rows"] == [[3]]


def test_jobs_are_visible_to_their_tenant_only(client: TestClient, keys: Keys) -> None:
    job_id = refresh(client, keys.acme_admin, "silver.profiles").json()["job_id"]
    wait_for_job(client, keys.acme_admin, job_id)
    assert client.get(job_path(job_id), headers=bearer(keys.acme_viewer)).status_code == 200
    assert client.get(job_path(job_id), headers=bearer(keys.platform)).status_code == 200
    hidden = client.get(job_path(job_id), headers=bearer(keys.globex_admin))
    unknown = client.get(job_path("0" * 36), headers=bearer(keys.globex_admin))
    # Someone else's job and no job look the same: ids cannot be probed.
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert hidden.json()["error"]["message"] == f"no job {job_id!r}"

    platform_job = refresh(client, keys.platform, "gold.dim_workers").json()["job_id"]
    wait_for_job(client, keys.platform, platform_job)
    assert client.get(job_path(platform_job), headers=bearer(keys.acme_admin)).status_code == 404


def test_a_failing_model_fails_the_job(client: TestClient, keys: Keys) -> None:
    job_id = refresh(client, keys.globex_admin, "gold.broken").json()["job_id"]
    job = wait_for_job(client, keys.globex_admin, job_id)
    assert job["status"] == "failed"
    assert job["error"] == "model(s) failed: broken"
    steps = {s["model"]: s for s in job["steps"]}
    assert steps["broken"]["status"] == "failed"
    assert "no_such_column" in steps["broken"]["error"]
    assert steps["profiles"]["status"] == "succeeded"
    assert projections(client, keys.globex_viewer)["gold.broken"]["status"] == "never_built"


def test_refresh_of_an_explore_builds_its_tables(client: TestClient, keys: Keys) -> None:
    job_id = refresh(client, keys.acme_admin, "explore.assignments").json()["job_id"]
    job = wait_for_job(client, keys.acme_admin, job_id)
    assert job["status"] == "succeeded"
    assert {s["model"] for s in job["steps"]} == {
        "assignments",
        "fct_assignments",
        "profiles",
        "dim_workers",
    }


def test_refresh_of_an_unknown_projection(client: TestClient, keys: Keys) -> None:
    for key in ("gold.nope", "silver.assignments", "nope"):  # silver.assignments is not exposed
        response = refresh(client, keys.acme_admin, key)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_job_ids_that_are_no_job(client: TestClient, keys: Keys) -> None:
    for job_id in ("nope", "x" * 500, "%00"):
        response = client.get(job_path(job_id), headers=bearer(keys.platform))
        assert response.status_code == 404


def test_a_run_left_running_fails_when_a_server_starts(project: Path) -> None:
    with Catalog.open(catalog_url(project)) as catalog:
        left = catalog.start_run("transform", {"projection": "gold.dim_workers"}, "crashed")
        with serve(project) as started:
            assert started.get("/health").json() == {"status": "ok"}
            run = catalog.get_run(left)
    assert (run.status, run.error) == ("failed", "interrupted")


def test_tables_are_exposed_once_built(tmp_path: Path) -> None:
    root = build_project(tmp_path, select="+dim_workers")
    keys = create_keys(root)
    with serve(root) as client:
        missing = query(client, keys.acme_viewer, "select * from explore.assignments")
        assert missing.status_code == 400
        assert "not exposed" in missing.json()["error"]["message"]
        listed = projections(client, keys.acme_viewer)
        assert listed["gold.fct_assignments"]["status"] == "never_built"
        assert listed["explore.assignments"]["status"] == "never_built"

        job_id = refresh(client, keys.acme_admin, "gold.fct_assignments").json()["job_id"]
        assert wait_for_job(client, keys.acme_admin, job_id)["status"] == "succeeded"
        rows = query(client, keys.acme_viewer, "select assignment_id from explore.assignments")
        assert rows.status_code == 200
        assert sorted(r[0] for r in rows.json()["rows"]) == ["a1", "a2", "a3"]
        assert SECRET not in rows.text
        assert projections(client, keys.acme_viewer)["explore.assignments"]["status"] == "fresh"


@pytest.mark.parametrize("token_name", ["acme_admin", "platform"])
def test_no_route_leaks_through_metrics_or_health(
    client: TestClient, keys: Keys, token_name: str
) -> None:
    query(client, getattr(keys, token_name), "select * from gold.dim_workers", tenant="acme")
    for path in ("/metrics", "/health"):
        text = client.get(path).text
        assert "acme" not in text
        assert "globex" not in text
        assert SECRET not in text
