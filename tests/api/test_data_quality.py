"""``GET /api/v1/analytics/data-quality``: the latest check results, scoped to the caller."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import SECRET, Keys, TestClient, bearer, catalog_url

from strata.catalog.store import Catalog
from strata.quality.gate import check_project
from strata.transform.runner import prepare_project

PATH = "/api/v1/analytics/data-quality"
CHECKS = """
checks:
  - accepted_values: {column: job_title, values: [driver, cook]}
  - schema: {columns: {id: VARCHAR, company_id: VARCHAR}}
"""


@pytest.fixture(scope="module")
def checked(project: Path) -> str:
    yml = project / "models" / "silver" / "profiles.yml"
    yml.write_text(yml.read_text() + CHECKS)
    with Catalog.open(catalog_url(project)) as catalog:
        outcome = check_project(prepare_project(project), catalog, ["profiles"])
    assert outcome.errors == 1  # globex's job titles
    return outcome.run_id


def test_a_tenant_sees_only_its_own_results_and_rows(
    client: TestClient, keys: Keys, checked: str
) -> None:
    answer = client.get(PATH, headers=bearer(keys.acme_viewer))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {(r["check"], r["tenant"], r["status"]) for r in body["results"]} == {
        ("accepted_values_job_title", "acme", "pass"),
        ("schema", None, "pass"),
    }
    assert body["summary"] == {"passed": 2, "warnings": 0, "errors": 0}
    assert SECRET not in json.dumps(body)
    assert {r["run_id"] for r in body["results"]} == {checked}


def test_the_failing_tenant_sees_its_failure_with_its_sample_rows(
    client: TestClient, keys: Keys, checked: str
) -> None:
    body = client.get(PATH, headers=bearer(keys.globex_viewer), params={"status": "error"}).json()
    [result] = body["results"]
    assert (result["table"], result["tenant"], result["failing"]) == (
        "silver.profiles",
        "globex",
        1,
    )
    assert result["threshold"] == "<= 0 failing distinct values"
    assert result["samples"]
    assert {s["company_id"] for s in result["samples"]} == {"globex"}
    assert {s["job_title"] for s in result["samples"]} == {SECRET}


def test_a_platform_admin_sees_every_tenant_or_one(
    client: TestClient, keys: Keys, checked: str
) -> None:
    every = client.get(PATH, headers=bearer(keys.platform)).json()["results"]
    assert {r["tenant"] for r in every} == {"acme", "globex", None}
    one = client.get(PATH, headers=bearer(keys.platform), params={"tenant": "globex"}).json()
    assert {r["tenant"] for r in one["results"]} == {"globex", None}


def test_a_tenant_cannot_ask_for_another_tenant(
    client: TestClient, keys: Keys, checked: str
) -> None:
    answer = client.get(PATH, headers=bearer(keys.acme_admin), params={"tenant": "globex"})
    assert answer.status_code == 403
    assert SECRET not in answer.text
    assert client.get(PATH).status_code == 401
    bad = client.get(PATH, headers=bearer(keys.platform), params={"tenant": "Not A Tenant!"})
    assert bad.status_code == 422
