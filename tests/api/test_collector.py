"""The HTTP collector: records posted with an ingest key land in bronze through the ingest
SDK, durably before the answer, all-or-nothing unless skip_invalid; keys are scoped to one
namespace and to nothing else.

Most tests run the collector alone (``create_collector_app``) over a bare project; the last
ones use the full query API of ``conftest`` to show it mounts the collector and keeps the
two kinds of keys apart. Bronze is read back from the lake after the app has shut down
(its ingest clients flush on close).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_helpers import (
    ENV,
    INGEST,
    Keys,
    TestClient,
    bearer,
    bronze_files,
    bronze_rows,
    create_keys,
    ingest,
    make_jwt,
    query,
    serve_collector,
)

import strata.api.routes.ingest as ingest_route
from strata.api.auth import ForbiddenError, require_tenant
from strata.api.settings import ServeSettings, load_serve_settings
from strata.catalog.store import Catalog
from strata.core.access import Principal, PrincipalError
from strata.transform.scaffold import init_project

# Small journal segments (the SDK's minimum), so a few requests roll over several.
SMALL = {**ENV, "STRATA_INGEST_SEGMENT_BYTES": str(1 << 20)}
# Nothing is written before the app closes: what is in bronze then came from one batch.
HELD = {**SMALL, "STRATA_INGEST_BATCH_MAX_AGE_S": "3600"}


def ndjson(token: str) -> dict[str, str]:
    return {**bearer(token), "Content-Type": "application/x-ndjson"}


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A project that was never built: the collector needs only strata.toml."""
    return init_project(tmp_path / "proj", "proj")


@pytest.fixture
def bare_keys(bare: Path) -> Keys:
    return create_keys(bare)


@pytest.fixture
def http(bare: Path) -> Iterator[TestClient]:
    with serve_collector(bare, environ=SMALL) as client:
        yield client


def clicks(*tenants: str, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"tenant_id": tenant, "id": start + n, "page": f"/p/{start + n}", "ms": 1.5}
        for n, tenant in enumerate(tenants)
    ]


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(row["id"] for row in rows)


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# -- landing ------------------------------------------------------------------------------------


def test_a_json_array_lands_in_bronze_under_each_records_tenant(
    bare: Path, bare_keys: Keys
) -> None:
    before = dt.datetime.now(dt.UTC)
    with serve_collector(bare, environ=SMALL) as http:
        records = [*clicks("acme", "globex", "acme"), {"tenant_id": 42, "id": 3, "page": "/"}]
        response = ingest(http, bare_keys.events_ingest, records)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 4, "rejected": []}
    after = dt.datetime.now(dt.UTC)

    rows = bronze_rows(bare / "lake", "events", "clicks")
    assert sorted(rows) == ["42", "acme", "globex"]
    assert ids(rows["acme"]) == [0, 2]
    assert ids(rows["globex"]) == [1]
    # An int tenant lands as its canonical string, in the row as in the partition.
    assert [r["tenant_id"] for r in rows["42"]] == ["42"]
    for tenant, landed in rows.items():
        for row in landed:
            assert row["tenant_id"] == tenant
            assert row["source_service"] == "collector"
            assert before <= row["ingested_at"] <= after
    assert rows["acme"][0]["page"] == "/p/0"
    assert rows["acme"][0]["ms"] == 1.5


def test_ndjson_lands_under_the_keys_tenant(bare: Path, bare_keys: Keys) -> None:
    body = b'{"id": 1, "page": "/a"}\n\n{"id": 2, "tenant_id": "acme"}\r\n{"id": 3}\n'
    with serve_collector(bare, environ=SMALL) as http:
        response = http.post(
            f"{INGEST}/events/views",
            content=body,
            headers=ndjson(bare_keys.events_acme_ingest),
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 3, "rejected": []}

    rows = bronze_rows(bare / "lake", "events", "views")
    assert list(rows) == ["acme"]
    assert ids(rows["acme"]) == [1, 2, 3]
    assert {row["source_service"] for row in rows["acme"]} == {"collector"}


def test_requests_are_batched_into_one_file_per_partition(bare: Path, bare_keys: Keys) -> None:
    with serve_collector(bare, environ=HELD) as http:
        for start in range(0, 50, 10):
            records = clicks(*["acme"] * 5, *["globex"] * 5, start=start)
            assert ingest(http, bare_keys.events_ingest, records).status_code == 200
        assert bronze_files(bare / "lake", "events") == []  # held in the journal until close

    files = bronze_files(bare / "lake", "events")
    assert len(files) == 2  # one per tenant (same table and day), not one per request
    rows = bronze_rows(bare / "lake", "events", "clicks")
    assert len(ids(rows["acme"])) == len(ids(rows["globex"])) == 25
    assert sorted(ids(rows["acme"]) + ids(rows["globex"])) == list(range(50))


def test_an_empty_array_is_accepted(http: TestClient, bare_keys: Keys) -> None:
    response = ingest(http, bare_keys.events_ingest, [])
    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "rejected": []}


# -- invalid records ----------------------------------------------------------------------------

MIXED = [
    {"tenant_id": "acme", "id": 0},
    "not an object",
    {"id": 2},
    {"tenant_id": "Acme Corp", "id": 3},
    {"tenant_id": "acme", "id": 4, "ingested_at": "2024-01-01"},
    {"tenant_id": "globex", "id": 5, "big": 2**63},
    {"tenant_id": "globex", "id": 6, "nested": {"a": [1, 2]}},
    {"tenant_id": "acme", "id": 7, "": 1},
]
MIXED_INVALID = [1, 2, 3, 4, 5, 7]


def test_invalid_records_are_listed_and_nothing_lands(bare: Path, bare_keys: Keys) -> None:
    with serve_collector(bare, environ=SMALL) as http:
        response = ingest(http, bare_keys.events_ingest, MIXED)
        assert response.status_code == 422, response.text
        body = error(response)
        assert body["code"] == "invalid_records"
        assert "6 of 8 records are invalid" in body["message"]
        listed = {r["index"]: r["reason"] for r in body["records"]}
        assert sorted(listed) == MIXED_INVALID
        assert "must be a JSON object, not a string" in listed[1]
        assert "field 'tenant_id' is missing" in listed[2]
        assert "invalid tenant 'Acme Corp'" in listed[3]
        assert "'ingested_at' is reserved" in listed[4]
        assert "'big': integer does not fit in a 64-bit column" in listed[5]
        assert "must not be empty" in listed[7]
        assert "Traceback" not in response.text

        # Fixed and sent again, the whole batch lands once.
        fixed = [MIXED[0], MIXED[6], {"tenant_id": "acme", "id": 8}]
        response = ingest(http, bare_keys.events_ingest, fixed)
        assert response.json() == {"accepted": 3, "rejected": []}

    rows = bronze_rows(bare / "lake", "events", "clicks")
    assert ids(rows["acme"]) == [0, 8]
    assert ids(rows["globex"]) == [6]
    assert orjson.loads(rows["globex"][0]["nested"]) == {"a": [1, 2]}


def test_a_refused_request_leaves_nothing_in_the_lake(bare: Path, bare_keys: Keys) -> None:
    with serve_collector(bare, environ=SMALL) as http:
        assert ingest(http, bare_keys.events_ingest, MIXED).status_code == 422
    assert bronze_files(bare / "lake", "events") == []
    assert not (bare / "lake" / "events").exists()


def test_skip_invalid_lands_the_valid_records_and_lists_the_others(
    bare: Path, bare_keys: Keys
) -> None:
    with serve_collector(bare, environ=SMALL) as http:
        response = ingest(http, bare_keys.events_ingest, MIXED, skip_invalid="true")
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["accepted"] == 2
        assert [r["index"] for r in answer["rejected"]] == MIXED_INVALID
        assert all(r["reason"] for r in answer["rejected"])

    rows = bronze_rows(bare / "lake", "events", "clicks")
    assert {t: ids(r) for t, r in rows.items()} == {"acme": [0], "globex": [6]}


def test_a_bad_ndjson_line_is_an_invalid_record(http: TestClient, bare_keys: Keys) -> None:
    body = b'{"tenant_id": "acme", "id": 1}\n{"tenant_id": "acme", \n\n[1, 2]\n'
    response = http.post(
        f"{INGEST}/events/clicks",
        content=body,
        headers=ndjson(bare_keys.events_ingest),
    )
    assert response.status_code == 422
    records = error(response)["records"]
    assert [(r["index"], r["line"]) for r in records] == [(1, 2), (2, 4)]
    assert records[0]["reason"].startswith("line is not valid JSON")
    assert "not an array" in records[1]["reason"]


def test_a_tenant_bound_key_refuses_records_of_another_tenant(bare: Path, bare_keys: Keys) -> None:
    with serve_collector(bare, environ=SMALL) as http:
        records = [{"id": 1}, {"id": 2, "tenant_id": "globex"}, {"id": 3, "tenant_id": None}]
        response = ingest(http, bare_keys.events_acme_ingest, records)
        assert response.status_code == 422
        listed = {r["index"]: r["reason"] for r in error(response)["records"]}
        assert sorted(listed) == [1, 2]
        assert "'globex', but this key lands records of tenant 'acme' only" in listed[1]
    assert bronze_files(bare / "lake", "events") == []


def test_the_tenant_field_is_configurable(bare: Path, bare_keys: Keys) -> None:
    settings = ServeSettings(collector_tenant_field="company")
    with serve_collector(bare, settings=settings, environ=SMALL) as http:
        response = ingest(http, bare_keys.events_ingest, [{"company": "initech", "id": 1}])
        assert response.json() == {"accepted": 1, "rejected": []}
        response = ingest(http, bare_keys.events_ingest, [{"tenant_id": "acme", "id": 2}])
        assert "field 'company' is missing" in error(response)["records"][0]["reason"]
    assert list(bronze_rows(bare / "lake", "events", "clicks")) == ["initech"]


# -- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"[{", "application/json", 400, "malformed_body"),
        (b'{"tenant_id": "acme"}', "application/json", 400, "malformed_body"),
        (b"", "application/json", 400, "malformed_body"),
        (b"tenant_id=acme", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_a_body_that_is_not_records_is_refused(
    http: TestClient, bare_keys: Keys, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = http.post(
        f"{INGEST}/events/clicks",
        content=content,
        headers={**bearer(bare_keys.events_ingest), "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert error(response)["code"] == code
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("path", "named"),
    [("Events/clicks", "namespace 'Events'"), ("events/click-stream", "table 'click-stream'")],
)
def test_invalid_identifiers_are_named(
    http: TestClient, bare_keys: Keys, path: str, named: str
) -> None:
    response = ingest(http, bare_keys.events_ingest, clicks("acme"), path=path)
    assert response.status_code == 422
    assert error(response)["code"] == "invalid_identifier"
    assert named in error(response)["message"]


# -- body size ----------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_by_content_length(bare: Path, bare_keys: Keys) -> None:
    settings = ServeSettings(collector_max_body_bytes=2048)
    with serve_collector(bare, settings=settings, environ=SMALL) as http:
        records = clicks(*["acme"] * 100)
        assert len(orjson.dumps(records)) > 2048
        response = ingest(http, bare_keys.events_ingest, records)
        assert response.status_code == 413
        assert error(response)["code"] == "body_too_large"
        assert "limit of 2048 bytes" in error(response)["message"]
        assert ingest(http, bare_keys.events_ingest, clicks("acme")).status_code == 200
    assert ids(bronze_rows(bare / "lake", "events", "clicks")["acme"]) == [0]


def test_a_chunked_body_over_the_limit_is_413(bare: Path, bare_keys: Keys) -> None:
    settings = ServeSettings(collector_max_body_bytes=2048)
    line = orjson.dumps({"tenant_id": "acme", "page": "x" * 200}) + b"\n"
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting the bytes can tell
        for _ in range(40):
            sent.append(len(line))
            yield line

    with serve_collector(bare, settings=settings, environ=SMALL) as http:
        response = http.post(
            f"{INGEST}/events/clicks",
            content=chunks(),
            headers=ndjson(bare_keys.events_ingest),
        )
        assert response.status_code == 413, response.text
        assert "limit of 2048 bytes" in error(response)["message"]
        assert sum(sent) > 2048
    assert bronze_files(bare / "lake", "events") == []


def test_the_collector_limit_is_its_own(bare: Path, bare_keys: Keys) -> None:
    """The query API's small body limit does not apply to ingest, nor the reverse."""
    settings = ServeSettings(max_body_bytes=1024)
    with serve_collector(bare, settings=settings, environ=SMALL) as http:
        records = clicks(*["acme"] * 200)
        assert len(orjson.dumps(records)) > 8 * 1024
        assert ingest(http, bare_keys.events_ingest, records).json()["accepted"] == 200


# -- keys ---------------------------------------------------------------------------------------


def test_ingest_needs_a_token(http: TestClient) -> None:
    response = http.post(f"{INGEST}/events/clicks", json=clicks("acme"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_ingest_key_is_bound_to_its_namespace(http: TestClient, bare_keys: Keys) -> None:
    response = ingest(http, bare_keys.events_ingest, clicks("acme"), path="wfm/clicks")
    assert response.status_code == 403
    assert error(response)["code"] == "forbidden"
    assert "namespace 'events' only, not 'wfm'" in error(response)["message"]


@pytest.mark.parametrize("holder", ["acme_viewer", "acme_admin", "acme_service", "platform"])
def test_query_keys_may_not_ingest(http: TestClient, bare_keys: Keys, holder: str) -> None:
    response = ingest(http, getattr(bare_keys, holder), clicks("acme"))
    assert response.status_code == 403
    assert "may not land records" in error(response)["message"]


def test_a_revoked_key_is_refused(bare: Path, http: TestClient) -> None:
    with Catalog.open(f"sqlite:///{bare / '.strata' / 'catalog.db'}") as catalog:
        key, token = catalog.create_key(None, "ingest", namespace="events")
        assert ingest(http, token, clicks("acme")).status_code == 200
        assert catalog.revoke_key(key.key_id)
    assert ingest(http, token, clicks("acme")).status_code == 401


# -- durability ---------------------------------------------------------------------------------


class RecordedSyncs:
    """Wraps the collector's journal sync: the content of each file it made durable."""

    def __init__(self) -> None:
        self.synced: list[bytes] = []
        self._real = ingest_route.sync_file

    def __call__(self, fd: int) -> None:
        self._real(fd)
        self.synced.append(os.pread(fd, os.fstat(fd).st_size, 0))

    def covered(self, marker: bytes) -> bool:
        return any(marker in content for content in self.synced)


def test_accepted_records_are_synced_to_disk_before_the_answer(
    bare: Path, bare_keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordedSyncs()
    monkeypatch.setattr(ingest_route, "sync_file", recorded)
    journal = bare / ".strata" / "collector-journal" / "events" / "collector"
    # Per request a 700 KB frame (one tenant's records) and a 400 KB record: no 1 MiB
    # segment holds both, so each request spans two segments.
    padding = "p" * 2800
    with serve_collector(bare, environ=HELD) as http:
        for batch in range(4):
            first, last = f"first-of-{batch}".encode(), f"last-of-{batch}".encode()
            records = [{"tenant_id": "acme", "id": n, "pad": padding} for n in range(250)]
            records[0]["marker"] = first.decode()
            records.append(
                {"tenant_id": "globex", "id": 999, "marker": last.decode(), "pad": "q" * 400_000}
            )
            assert not recorded.covered(first)
            assert ingest(http, bare_keys.events_ingest, records).status_code == 200
            # Before answering, the collector synced the files holding this request's first
            # and last records, after they were written.
            assert recorded.covered(first)
            assert recorded.covered(last)
        assert len(list(journal.glob("slot-*/segments/*.seg"))) > 1


def test_concurrent_requests_all_land(bare: Path, bare_keys: Keys) -> None:
    with serve_collector(bare, environ=SMALL) as http:

        def post(start: int) -> int:
            response = ingest(http, bare_keys.events_ingest, clicks("acme", "globex", start=start))
            assert response.status_code == 200, response.text
            return int(response.json()["accepted"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert sum(pool.map(post, range(0, 200, 2))) == 200
    rows = bronze_rows(bare / "lake", "events", "clicks")
    assert sorted(ids(rows["acme"]) + ids(rows["globex"])) == list(range(200))


# -- observability ------------------------------------------------------------------------------


def test_records_and_requests_are_counted(http: TestClient, bare_keys: Keys) -> None:
    ingest(http, bare_keys.events_ingest, clicks("acme", "acme"))
    ingest(http, bare_keys.events_ingest, MIXED)
    ingest(http, bare_keys.events_ingest, MIXED, skip_invalid="true")
    text = http.get("/metrics").text
    for line in (
        'strata_ingest_records_total{namespace="events",outcome="accepted"} 4.0',
        'strata_ingest_records_total{namespace="events",outcome="rejected"} 12.0',
        'strata_ingest_requests_total{namespace="events",outcome="landed"} 1.0',
        'strata_ingest_requests_total{namespace="events",outcome="refused"} 1.0',
        'strata_ingest_requests_total{namespace="events",outcome="partial"} 1.0',
    ):
        assert line in text.splitlines(), line
    assert "acme" not in text  # no tenant in any label


# -- the collector alone, and inside the full server ----------------------------------------


def test_collector_only_serves_no_query_routes(http: TestClient, bare_keys: Keys) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    assert query(http, bare_keys.acme_viewer, "select 1").status_code == 404
    assert http.get("/api/v1/analytics/projections").status_code == 404
    assert http.get("/ui/").status_code == 404
    paths = set(http.get("/openapi.json").json()["paths"])
    assert paths == {"/health", "/metrics", f"{INGEST}/{{namespace}}/{{table}}"}


def test_the_full_server_mounts_the_collector(
    client: TestClient, keys: Keys, project: Path
) -> None:
    response = ingest(client, keys.events_ingest, clicks("acme"), path="events/signups")
    assert response.json() == {"accepted": 1, "rejected": []}
    journal = project / ".strata" / "collector-journal" / "events" / "collector"
    assert any(journal.glob("slot-*/segments/*.seg"))


def test_an_ingest_key_may_not_query(client: TestClient, keys: Keys) -> None:
    for token in (keys.events_ingest, keys.events_acme_ingest):
        response = query(client, token, "select count(*) from gold.dim_workers")
        assert response.status_code == 403
        assert "may only land records in namespace 'events'" in error(response)["message"]
        response = client.get("/api/v1/analytics/projections", headers=bearer(token))
        assert response.status_code == 403
    # A query key still queries.
    assert query(client, keys.acme_viewer, "select count(*) from gold.dim_workers").json()[
        "rows"
    ] == [[2]]


def test_the_full_server_refuses_query_keys_on_ingest(client: TestClient, keys: Keys) -> None:
    for token in (keys.acme_viewer, keys.acme_service, keys.platform):
        assert ingest(client, token, clicks("acme")).status_code == 403


def test_settings_resolve_the_journal_against_the_project(bare: Path) -> None:
    with (bare / "strata.toml").open("a") as toml:
        toml.write(
            '\n[serve]\ncollector_journal = "var/journal"\ncollector_max_body_kb = 64\n'
            'collector_tenant_field = "company_id"\n'
        )
    settings = load_serve_settings(bare, {})
    assert settings.collector_journal == bare / "var" / "journal"
    assert settings.collector_max_body_bytes == 64 * 1024
    assert settings.collector_tenant_field == "company_id"
    assert ServeSettings().collector_max_body_bytes == 10 * 1024 * 1024  # the default


def test_a_token_cannot_carry_the_ingest_role(client: TestClient) -> None:
    """The namespace binding lives with the key in the catalog; a JWT has none."""
    token = make_jwt({"company_id": "acme", "role": "ingest"})
    assert ingest(client, token, clicks("acme")).status_code == 401
    response = query(client, token, "select 1")
    assert response.status_code == 401
    assert "API keys only" in error(response)["message"]


def test_an_ingest_principal_reads_no_tenant() -> None:
    collector = Principal(tenant="acme", role="ingest", subject="k", via="api_key", namespace="ev")
    with pytest.raises(ForbiddenError):
        require_tenant(collector, None)
    with pytest.raises(PrincipalError, match="needs a namespace"):
        Principal(tenant=None, role="ingest", subject="k", via="api_key")
    with pytest.raises(PrincipalError, match="takes no namespace"):
        Principal(tenant="acme", role="viewer", subject="k", via="api_key", namespace="ev")
