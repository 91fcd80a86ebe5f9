"""Who may call: API keys and JWTs over HTTP, 401 with WWW-Authenticate, 403 by role."""

from __future__ import annotations

import pytest
from api_helpers import QUERY, Keys, TestClient, bearer, make_jwt, query

COUNT = {"sql": "select count(*) from gold.dim_workers"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer strata_0123456789abcdef_" + "A" * 43},
        {"Authorization": "Bearer a b"},
    ],
    ids=["missing", "empty", "basic", "no token", "garbage", "unknown key", "two tokens"],
)
def test_unauthenticated(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(QUERY, json=COUNT, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"


def test_revoked_key(client: TestClient, keys: Keys) -> None:
    response = client.post(QUERY, json=COUNT, headers=bearer(keys.revoked))
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_valid_jwt(client: TestClient) -> None:
    token = make_jwt({"company_id": "globex", "role": "viewer"})
    response = client.post(QUERY, json=COUNT, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["rows"] == [[3]]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (make_jwt({"company_id": "acme", "role": "viewer", "exp": 1_000_000}), "expired"),
        (make_jwt({"company_id": "acme", "role": "viewer"}, secret="f" * 40), "signature"),
        (make_jwt({"company_id": "acme", "role": "viewer", "aud": "other"}), "audience"),
        (make_jwt({"company_id": "acme", "role": "root"}), "unknown role"),
        (make_jwt({"role": "viewer"}), "no tenant claim"),
    ],
    ids=["expired", "forged", "wrong audience", "bad role", "no tenant"],
)
def test_invalid_jwt(client: TestClient, token: str, reason: str) -> None:
    response = client.post(QUERY, json=COUNT, headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert reason in response.json()["error"]["message"]


def test_unsigned_jwt(client: TestClient) -> None:
    header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    claims = "eyJzdWIiOiJ4IiwiY29tcGFueV9pZCI6ImFjbWUiLCJyb2xlIjoidmlld2VyIn0"
    response = client.post(QUERY, json=COUNT, headers=bearer(f"{header}.{claims}."))
    assert response.status_code == 401


def test_a_jwt_tenant_cannot_name_another(client: TestClient) -> None:
    token = make_jwt({"company_id": "acme", "role": "tenant_admin"})
    response = query(client, token, COUNT["sql"], tenant="globex")
    assert response.status_code == 403


def test_every_tenant_role_may_query(client: TestClient, keys: Keys) -> None:
    for token in (keys.acme_viewer, keys.acme_service, keys.acme_admin):
        assert query(client, token, COUNT["sql"]).json()["rows"] == [[2]]


@pytest.mark.parametrize("role", ["viewer", "service"])
def test_only_admins_refresh(client: TestClient, keys: Keys, role: str) -> None:
    token = keys.acme_viewer if role == "viewer" else keys.acme_service
    response = client.post(
        "/api/v1/analytics/projections/gold.dim_workers:refresh", headers=bearer(token)
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_every_api_route_needs_a_token(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/analytics/projections"),
        ("POST", "/api/v1/analytics/projections/gold.dim_workers:refresh"),
        ("GET", "/api/v1/analytics/etl/jobs/00000000-0000-0000-0000-000000000000"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
