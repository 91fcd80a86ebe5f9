"""Bad input gets the right 4xx and a JSON error, never a 500, and the server keeps serving."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ENV, QUERY, Keys, TestClient, bearer, query, serve

from strata.api.settings import load_serve_settings

LIMIT = 8192  # the body limit of this module's server, in bytes


@pytest.fixture(scope="module")
def client(project: Path) -> Iterator[TestClient]:
    settings = dataclasses.replace(load_serve_settings(project, ENV), max_body_bytes=LIMIT)
    with serve(project, settings) as started:
        yield started


def _chunks(size: int) -> Iterator[bytes]:
    """A body sent chunked, with no Content-Length to check up front."""
    yield b'{"sql": "select 1 as x", "tenant": null, "parameters": {}, "pad": "'
    sent = 0
    while sent < size:
        yield b"x" * 512
        sent += 512
    yield b'"}'


def case(name: str, status: int, code: str, **request: Any) -> Any:
    """One bad request: what to send (httpx keyword arguments), the status and error code."""
    return pytest.param(request, status, code, id=name)


def body(text: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": text, "headers": {"Content-Type": content_type}}


def sql(text: str, **fields: Any) -> dict[str, Any]:
    return {"json": {"sql": text, **fields}}


CASES = [
    case("malformed JSON", 400, "malformed_json", **body(b'{"sql": "select 1",')),
    case("invalid UTF-8", 400, "malformed_json", **body(b"\xff\xfe{}")),
    case("number of 5000 digits", 400, "malformed_json", **body(b'{"x": ' + b"9" * 5000 + b"}")),
    case("deeply nested JSON", 400, "malformed_json", **body(b"[" * 4000 + b"]" * 4000)),
    case("empty body", 400, "invalid_request", **body(b"")),
    case("array body", 400, "invalid_request", json=[]),
    case("string body", 400, "invalid_request", json="select 1"),
    case("missing sql", 400, "invalid_request", json={"parameters": {}}),
    case("sql not a string", 400, "invalid_request", json={"sql": 1}),
    case("unknown field", 400, "invalid_request", **sql("select 1", limit=5)),
    case("max_rows a string", 400, "invalid_request", **sql("select 1", max_rows="5")),
    case("max_rows a bool", 400, "invalid_request", **sql("select 1", max_rows=True)),
    case("max_rows negative", 400, "invalid_request", **sql("select 1", max_rows=-1)),
    case("timeout_s zero", 400, "invalid_request", **sql("select 1", timeout_s=0)),
    case("timeout_s text", 400, "invalid_request", **sql("select 1", timeout_s="1")),
    case("tenant a number", 400, "invalid_request", **sql("select 1", tenant=7)),
    case("tenant invalid", 400, "invalid_identifier", **sql("select 1", tenant="../x")),
    case("parameters a list", 400, "invalid_request", **sql("select 1", parameters=[1])),
    case("parameter a list", 400, "invalid_request", **sql("select $x", parameters={"x": [1]})),
    case("parameter an object", 400, "invalid_request", **sql("select $x", parameters={"x": {}})),
    case(
        "parameter over 64 bits",
        400,
        "invalid_request",
        **sql("select $x", parameters={"x": 2**64}),
    ),
    case(
        "parameter of the wrong SQL type",
        400,
        "query_failed",
        **sql("select $x + 1", parameters={"x": "abc"}),
    ),
    case("parameter missing", 400, "query_refused", **sql("select $x")),
    case("parameter unused", 400, "query_refused", **sql("select 1", parameters={"x": 1})),
    case("positional parameter", 400, "query_refused", **sql("select ?")),
    case("empty SQL", 400, "query_refused", **sql("")),
    case("SQL that does not parse", 400, "query_refused", **sql("selec 1")),
    case("unknown table", 400, "query_refused", **sql("select * from gold.nope")),
    case("bronze is not exposed", 400, "query_refused", **sql("select * from bronze.profiles")),
    case("DDL", 400, "query_refused", **sql("drop table gold.dim_workers")),
    case("unknown column", 400, "query_failed", **sql("select nope from gold.dim_workers")),
    case("division by zero", 400, "query_failed", **sql("select 1 // 0 as x")),
    case(
        "text/plain body",
        415,
        "unsupported_media_type",
        **body(b'{"sql": "select 1"}', "text/plain"),
    ),
    case(
        "unknown Accept", 406, "not_acceptable", **sql("select 1"), headers={"Accept": "text/html"}
    ),
    case("body over the limit", 413, "body_too_large", **sql("select 1", pad="x" * LIMIT)),
    case("chunked body over the limit", 413, "body_too_large", content=_chunks(LIMIT)),
]


@pytest.mark.parametrize(("request_", "status", "code"), CASES)
def test_bad_input(
    client: TestClient, keys: Keys, request_: dict[str, Any], status: int, code: str
) -> None:
    sent = dict(request_)
    headers = {**bearer(keys.acme_viewer), **sent.pop("headers", {})}
    response = client.post(QUERY, headers=headers, **sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.text
    assert query(client, keys.acme_viewer, "select count(*) from gold.dim_workers").json()[
        "rows"
    ] == [[2]]


def test_other_routes_and_methods(client: TestClient, keys: Keys) -> None:
    assert client.get(QUERY, headers=bearer(keys.acme_viewer)).status_code == 405
    missing = client.get("/api/v1/analytics/nope", headers=bearer(keys.acme_viewer))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    bad_tenant = client.get(
        "/api/v1/analytics/projections", params={"tenant": "A B"}, headers=bearer(keys.platform)
    )
    assert bad_tenant.status_code == 400


def test_nothing_reached_the_catch_all(client: TestClient, keys: Keys) -> None:
    """Runs after the cases above (same module, same server): none of them was a 500."""
    metrics = client.get("/metrics").text
    assert 'status="413"' in metrics
    assert 'status="500"' not in metrics
