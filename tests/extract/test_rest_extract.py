"""REST extraction against a fake vendor on 127.0.0.1 (``vendor_server.py``): paginated,
rate-limited, with an occasional 500, like Pipedrive's and Zendesk's list APIs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vendor_server import DEALS, PERSONS, T0, TICKETS, TOKEN, USERS, VendorServer

from strata.catalog import Catalog
from strata.extract.config import load_source
from strata.extract.http import JsonFetcher, RateLimiter, RetryPolicy, retry_after_seconds
from strata.extract.landing import TENANT_FIELD, read_part
from strata.extract.rest import extract_rest_source
from strata.extract.rest_config import RestSourceConfig
from strata.extract.sql import ExtractError, ExtractSummary
from strata.lake.storage import LocalStorage

TODAY = dt.date(2026, 1, 2)
SOURCE = """\
name: vendor
kind: rest
base_url: ${VENDOR_URL}
scope: acme-eu
format: FORMAT
headers: {Authorization: "Bearer ${VENDOR_TOKEN}"}
retries: {max_attempts: 3, backoff_seconds: 0.01, max_backoff_seconds: 0.05}
tenant: acme
entities:
  - entity: deals
    path: /v1/deals
    records: data
    pagination: {type: offset, offset_param: start, limit_param: limit, limit: 7,
                 more: additional_data.pagination.more_items_in_collection}
    incremental: {param: since, watermark_field: update_time, format: "%Y-%m-%d %H:%M:%S"}
    tenant_field: account_id
    primary_key: [id]
    lookback: 10m
    chunk_rows: 10
  - entity: persons
    path: /v1/persons
    records: data
    pagination: {type: page, size_param: per_page, size: 5}
    tenant_field: account_id
    primary_key: [id]
  - entity: tickets
    path: /api/v2/incremental/tickets/cursor.json
    records: tickets
    pagination: {type: cursor, cursor_path: after_cursor, end: end_of_stream, cursor_only: true}
    incremental: {param: start_time, watermark_field: updated_at, format: unix, initial: 0}
    primary_key: [id]
    lookback: 5m
  - entity: users
    path: /api/v2/users.json
    records: users
    params: {per_page: 4}
    pagination: {type: link}
    incremental: {param: updated_since, watermark_field: updated_at}
    primary_key: [id]
"""
COLLECTION = {"deals": DEALS, "persons": PERSONS, "tickets": TICKETS, "users": USERS}


@pytest.fixture
def vendor() -> Iterator[VendorServer]:
    with VendorServer(deals=45, persons=20, tickets=23, users=18, ticket_page_size=5) as server:
        yield server


def _source(
    tmp_path: Path, vendor: VendorServer, *, fmt: str = "jsonl.gz", url: str | None = None
) -> RestSourceConfig:
    root = tmp_path / "project"
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "vendor.yml").write_text(SOURCE.replace("FORMAT", fmt))
    env = {"VENDOR_URL": url or vendor.url, "VENDOR_TOKEN": vendor.token}
    source = load_source(root, "vendor", env)
    assert isinstance(source, RestSourceConfig)
    return source


def _extract(
    source: RestSourceConfig,
    lake: LocalStorage,
    catalog: Catalog,
    *entities: str,
    full: bool = False,
) -> ExtractSummary:
    return extract_rest_source(
        source, lake, catalog, entities=list(entities) or None, full=full, today=TODAY
    )


def _landed(lake: LocalStorage, summary: ExtractSummary, entity: str) -> list[dict[str, Any]]:
    (result,) = [r for r in summary.entities if r.entity == entity]
    return [record for part in result.parts for record in read_part(lake, part)]


def _watermark(catalog: Catalog, entity: str) -> str | None:
    mark = catalog.watermark("vendor", entity)
    return None if mark is None else mark.value


def _failed_run(catalog: Catalog) -> Any:
    (run,) = catalog.list_runs(kind="extract", status="failed")
    return run


# -- every pagination type ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "requests", "watermark"),
    [
        ("deals", 7, "2026-01-01T12:45:00+00:00"),  # 45 records, 7 a page, until more is false
        ("persons", 5, None),  # 20 records, 5 a page: the 5th page is empty
        ("tickets", 5, "2026-01-01T12:23:00+00:00"),  # 23 records, 5 a page, until end_of_stream
        ("users", 5, "2026-01-01T12:18:00+00:00"),  # 18 records, 4 a page, until no rel="next"
    ],
)
def test_each_pagination_type_lands_every_record_once_in_order(
    tmp_path: Path,
    vendor: VendorServer,
    lake: LocalStorage,
    catalog: Catalog,
    entity: str,
    requests: int,
    watermark: str | None,
) -> None:
    summary = _extract(_source(tmp_path, vendor), lake, catalog, entity)

    expected = vendor.records(entity)
    landed = _landed(lake, summary, entity)
    assert [r["id"] for r in landed] == [r["id"] for r in expected]
    tenant_field = entity in ("deals", "persons")
    for record, original in zip(landed, expected, strict=True):
        tenant = original["account_id"] if tenant_field else "acme"
        assert record == original | {TENANT_FIELD: tenant}
    assert len(vendor.seen(COLLECTION[entity])) == requests
    assert all(r.status == 200 for r in vendor.requests)
    (result,) = summary.entities
    assert result.rows == len(expected)
    assert (result.watermark_before, result.watermark_after) == (None, watermark)
    assert _watermark(catalog, entity) == watermark
    assert catalog.get_run(summary.run_id).status == "succeeded"
    assert all(
        p.startswith(
            f"bronze/vendor/scope=acme-eu/entity={entity}/ingestion_date=2026-01-02"
            f"/run_id={summary.run_id}/part-"
        )
        for p in result.parts
    )


def test_parts_hold_chunk_rows_and_parquet_keeps_the_records(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    summary = _extract(_source(tmp_path, vendor, fmt="parquet"), lake, catalog, "deals")
    (result,) = summary.entities
    assert [p.rsplit("/", 1)[1] for p in result.parts] == [f"part-{n}.parquet" for n in range(5)]
    sizes = [len(read_part(lake, p)) for p in result.parts]
    assert sizes == [10, 10, 10, 10, 5]  # chunk_rows, whatever the page size (7)
    landed = _landed(lake, summary, "deals")
    assert [r["id"] for r in landed] == list(range(1, 46))
    assert json.loads(landed[0]["org_id"]) == {"value": 1001, "name": "Org 1"}
    assert landed[0]["title"] == "Deal 1 — ünïcode"


# -- incremental --------------------------------------------------------------------------


def test_a_second_run_fetches_only_changes_plus_the_lookback(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    source = _source(tmp_path, vendor)
    _extract(source, lake, catalog, "deals", "tickets")
    later = T0 + dt.timedelta(hours=2)
    vendor.touch("deals", [3, 10], later)
    new_deals = vendor.add("deals", 2, later + dt.timedelta(minutes=1))
    vendor.touch("tickets", [4], later)
    vendor.requests.clear()

    summary = _extract(source, lake, catalog, "deals", "tickets")

    deals_seen = vendor.seen(DEALS)
    # watermark 12:45:00 minus the 10m lookback, in the API's own format
    assert {r.params["since"] for r in deals_seen} == {"2026-01-01 12:35:00"}
    deals = _landed(lake, summary, "deals")
    assert sorted(r["id"] for r in deals) == sorted([3, 10, *range(35, 46), *new_deals])
    assert {r["id"]: r["version"] for r in deals if r["id"] in (3, 10)} == {3: 2, 10: 2}
    assert _watermark(catalog, "deals") == "2026-01-01T14:01:00+00:00"

    first, *rest = vendor.seen(TICKETS)
    # 12:23 minus 5m, as unix seconds; later pages carry only the cursor (cursor_only)
    assert first.params == {
        "start_time": str(int(dt.datetime(2026, 1, 1, 12, 18, tzinfo=dt.UTC).timestamp()))
    }
    assert rest
    assert all(set(r.params) == {"cursor"} for r in rest)
    tickets = _landed(lake, summary, "tickets")
    assert [r["id"] for r in tickets] == [*range(18, 24), 4]  # in updated_at order
    assert _watermark(catalog, "tickets") == "2026-01-01T14:00:00+00:00"


def test_full_ignores_the_watermark_and_the_first_run_sends_initial(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    source = _source(tmp_path, vendor)
    _extract(source, lake, catalog, "deals", "tickets")
    assert "since" not in vendor.seen(DEALS)[0].params  # no watermark, no initial: everything
    assert vendor.seen(TICKETS)[0].params == {"start_time": "0"}  # initial: 0
    vendor.requests.clear()
    summary = _extract(source, lake, catalog, "deals", "tickets", full=True)
    assert "since" not in vendor.seen(DEALS)[0].params
    assert vendor.seen(TICKETS)[0].params == {"start_time": "0"}
    assert len(_landed(lake, summary, "deals")) == 45
    assert len(_landed(lake, summary, "tickets")) == 23


# -- rate limits and retries --------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    vendor.fail(DEALS, 429, after=2, retry_after="0.6")
    summary = _extract(_source(tmp_path, vendor), lake, catalog, "deals")

    seen = vendor.seen(DEALS)
    assert [r.status for r in seen] == [200, 200, 429, *[200] * 5]
    assert seen[3].params == seen[2].params  # the same page again
    assert seen[3].at - seen[2].at >= 0.6
    assert [r["id"] for r in _landed(lake, summary, "deals")] == list(range(1, 46))


def test_a_per_second_budget_is_met_by_waiting_or_by_the_client_side_limit(
    tmp_path: Path, lake: LocalStorage, catalog: Catalog
) -> None:
    with VendorServer(persons=15, budget_per_second=3, retry_after="1") as vendor:
        summary = _extract(_source(tmp_path, vendor), lake, catalog, "persons")
        statuses = [r.status for r in vendor.requests]
        assert 429 in statuses
        for before, after in zip(vendor.requests, vendor.requests[1:], strict=False):
            if before.status == 429:
                assert after.at - before.at >= 1.0
        assert [r["id"] for r in _landed(lake, summary, "persons")] == list(range(1, 16))

    with VendorServer(persons=15, budget_per_second=3, retry_after="0.4") as vendor:
        source = _source(tmp_path, vendor)
        limited = dataclasses.replace(source, requests_per_second=2.5)
        summary = _extract(limited, lake, catalog, "persons")
        assert [r.status for r in vendor.requests] == [200] * 4
        assert len(_landed(lake, summary, "persons")) == 15


def test_an_occasional_500_is_retried_and_the_run_succeeds(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    vendor.fail(DEALS, 500, after=3)
    vendor.fail(TICKETS, 502, after=1)
    summary = _extract(_source(tmp_path, vendor), lake, catalog, "deals", "tickets")
    deals = vendor.seen(DEALS)
    assert [r.status for r in deals] == [200, 200, 200, 500, 200, 200, 200, 200]
    assert deals[4].params == deals[3].params
    assert [r["id"] for r in _landed(lake, summary, "deals")] == list(range(1, 46))
    assert [r["id"] for r in _landed(lake, summary, "tickets")] == list(range(1, 24))
    assert catalog.get_run(summary.run_id).status == "succeeded"


# -- failures: named, nothing half-landed counted, no gap after -----------------------------


def _break_with_500(vendor: VendorServer) -> None:
    vendor.fail(DEALS, 500, after=2, times=None)


def _break_with_html(vendor: VendorServer) -> None:
    vendor.fail(DEALS, 200, after=2, body="<html>Maintenance</html>", content_type="text/html")


def _break_credentials(vendor: VendorServer) -> None:
    vendor.token = "rotated-token-5678"


@pytest.mark.parametrize(
    ("breaker", "problem", "parts_left"),
    [
        (
            _break_with_500,
            r"GET /v1/deals\?since=2026-01-01 12:35:00&start=14&limit=7 answered 500 "
            r"Internal Server Error: \{\"error\": \"injected 500\"\} \(after 3 attempt\(s\)\)",
            1,
        ),
        (
            _break_with_html,
            r"GET /v1/deals\?since=2026-01-01 12:35:00&start=14&limit=7: the response "
            r"is not JSON \(text/html; body starts '<html>Maintenance</html>'\)",
            1,
        ),
        (
            _break_credentials,
            r"bad credentials: GET /v1/deals\?since=2026-01-01 12:35:00&start=0&limit=7 "
            r"answered 401 Unauthorized",
            0,
        ),
    ],
)
def test_a_failed_run_keeps_the_watermark_and_the_next_run_has_no_gap(
    tmp_path: Path,
    vendor: VendorServer,
    lake: LocalStorage,
    catalog: Catalog,
    breaker: Any,
    problem: str,
    parts_left: int,
) -> None:
    source = _source(tmp_path, vendor)
    _extract(source, lake, catalog, "deals")
    before = _watermark(catalog, "deals")
    later = T0 + dt.timedelta(hours=3)
    vendor.touch("deals", [1, 2, 30, 44], later)
    vendor.add("deals", 20, later)
    breaker(vendor)

    with pytest.raises(ExtractError) as caught:
        _extract(source, lake, catalog, "deals")

    message = str(caught.value)
    assert message.startswith("source 'vendor', entity 'deals': ")
    assert (caught.value.source, caught.value.entity) == ("vendor", "deals")
    assert re.search(problem, message), message
    assert message.endswith(f"(after {parts_left} part(s); watermark unchanged)")
    assert TOKEN not in message
    assert "rotated-token" not in message
    assert _watermark(catalog, "deals") == before
    failed = _failed_run(catalog)
    assert failed.error == message
    left = sorted(lake.root.glob(f"bronze/vendor/*/entity=deals/*/run_id={failed.run_id}/*"))
    assert len(left) == parts_left  # stays in its own run folder; not counted as landed

    vendor.clear()
    vendor.token = TOKEN
    summary = _extract(source, lake, catalog, "deals")
    landed = sorted(r["id"] for r in _landed(lake, summary, "deals"))
    # everything changed since the old watermark, plus only what the lookback re-reads
    assert landed == [1, 2, 30, *range(35, 66)]
    assert _watermark(catalog, "deals") == "2026-01-01T15:00:00+00:00"


def test_an_unreachable_vendor_fails_naming_source_and_entity(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = _source(tmp_path, vendor, url=f"http://127.0.0.1:{port}")
    with pytest.raises(
        ExtractError,
        match=r"^source 'vendor', entity 'deals': cannot reach "
        rf"http://127.0.0.1:{port} for GET /v1/deals\?start=0&limit=7: ConnectError.* "
        r"\(after 3 attempt\(s\)\) \(after 0 part\(s\); watermark unchanged\)$",
    ):
        _extract(source, lake, catalog, "deals")
    assert _watermark(catalog, "deals") is None
    assert _failed_run(catalog).status == "failed"
    assert not list(lake.root.glob("bronze/**/*.jsonl.gz"))

    summary = _extract(_source(tmp_path, vendor), lake, catalog, "deals")  # reachable again
    assert len(_landed(lake, summary, "deals")) == 45


def test_a_vanished_field_a_missing_records_path_and_a_foreign_link_are_clear_errors(
    tmp_path: Path, vendor: VendorServer, lake: LocalStorage, catalog: Catalog
) -> None:
    source = _source(tmp_path, vendor)
    vendor.drop_field("deals", "update_time")
    with pytest.raises(
        ExtractError,
        match=r"^source 'vendor', entity 'deals': GET /v1/deals\?start=0"
        r"&limit=7: record 1 has no watermark field 'update_time' \(an object with "
        r"keys: account_id, currency, id, org_id, title, value\)",
    ):
        _extract(source, lake, catalog, "deals")

    vendor.fail(PERSONS, 200, body='{"success": false, "error": "scope missing"}')
    with pytest.raises(
        ExtractError,
        match=r"entity 'persons': GET /v1/persons\?page=1&per_page=5: "
        r"no 'data' in the response \(an object with keys: error, success\)",
    ):
        _extract(source, lake, catalog, "persons")

    vendor.drop_field("persons", "account_id")
    with pytest.raises(ExtractError, match=r"record 1 has no tenant_field 'account_id'"):
        _extract(source, lake, catalog, "persons")

    page = json.dumps({"users": [{"id": 1, "updated_at": "2026-01-01T00:00:00Z"}]})
    link = {"Link": '<http://evil.example/api/v2/users.json?page=2>; rel="next"'}
    vendor.fail(USERS, 200, body=page, headers=link)
    with pytest.raises(
        ExtractError,
        match=r"entity 'users': the next page is on "
        r"http://evil.example, not http://127.0.0.1:\d+: not followed",
    ):
        _extract(source, lake, catalog, "users")
    assert [r.status for r in catalog.list_runs(kind="extract")] == ["failed"] * 4


# -- the pure parts of the HTTP layer -----------------------------------------------------


def test_retry_after_reads_seconds_fractions_and_http_dates() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(" 0.25 ", now) == 0.25
    assert retry_after_seconds("-3", now) == 0.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    for unreadable in (None, "", "soon", "nan", "inf"):
        assert retry_after_seconds(unreadable, now) is None


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=9, backoff_seconds=0.5, max_backoff_seconds=3.0)
    top = [policy.backoff(n, lambda low, high: high) for n in range(1, 6)]
    assert top == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(2, lambda low, high: low) == 0.5


def test_the_rate_limiter_spaces_requests() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    now[0] += 1.0
    limiter.wait()
    assert slept == [0.25, 0.25]
    RateLimiter(None, sleep=sleep).wait()
    assert len(slept) == 2


def test_the_fetcher_redacts_secrets_and_does_not_retry_a_404() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, text="no deals for token s3cret-value here")

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        fetcher = JsonFetcher(
            client, RetryPolicy(), RateLimiter(None), secrets={"s3cret-value"}, sleep=lambda s: None
        )
        with pytest.raises(
            Exception,
            match=r"^GET /x\?api_token=\*\*\*&q=1 answered 404 Not Found: "
            r"no deals for token \*\*\* here$",
        ):
            fetcher.get("http://h/x", (("api_token", "s3cret-value"), ("q", "1")))
    assert len(calls) == 1
