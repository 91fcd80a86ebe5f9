"""REST source declarations (``kind: rest``): parsing, errors by file:line, and the pure rules
they carry (pagination, incremental params)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core.errors import ConfigError
from strata.extract.config import SourceConfig, load_source
from strata.extract.http import (
    BadResponseError,
    CursorPagination,
    LinkPagination,
    OffsetPagination,
    PagePagination,
    PageRequest,
    Pagination,
    RetryPolicy,
)
from strata.extract.rest_config import Incremental, RestSourceConfig
from strata.transform.config import ProjectError

GOOD = """\
name: pipedrive
kind: rest
base_url: ${VENDOR_URL}/v1
scope: acme-eu
format: parquet
headers: {Authorization: "Bearer ${PD_TOKEN}"}
params: {api_token: "${PD_TOKEN}"}
rate_limit: {requests_per_second: 10}
retries: {max_attempts: 3, backoff_seconds: 0.25}
timeout_seconds: 5
tenant: acme
entities:
  - entity: deals
    path: /deals
    records: data
    params: {limit: 100, archived: false}
    pagination: {type: offset, offset_param: start, limit_param: limit, limit: 100,
                 more: additional_data.pagination.more_items_in_collection}
    incremental: {param: since, watermark_field: update_time, kind: timestamp,
                  format: "%Y-%m-%d %H:%M:%S"}
    primary_key: [id]
    lookback: 10m
  - entity: tickets
    path: /incremental/tickets/cursor.json
    records: tickets
    pagination: {type: cursor, cursor_path: after_cursor, cursor_param: cursor,
                 end: end_of_stream, cursor_only: true}
    incremental: {param: start_time, watermark_field: updated_at, format: unix, initial: 0}
    tenant_field: account_id
    chunk_rows: 250
  - entity: persons
    path: /persons
    records: data
    pagination: {type: page, page_param: page, size_param: per_page, size: 50}
  - entity: users
    path: /users.json
    records: users
    pagination: {type: link}
    incremental: {param: since_id, watermark_field: meta.id, kind: id, initial: 5}
    lookback: 3
"""
ENV = {"VENDOR_URL": "http://127.0.0.1:8080", "PD_TOKEN": "tok-12345"}


def _write(tmp_path: Path, text: str, name: str = "pipedrive.yml") -> Path:
    (tmp_path / "sources").mkdir(exist_ok=True)
    (tmp_path / "sources" / name).write_text(text)
    return tmp_path


def _load(tmp_path: Path, text: str = GOOD) -> RestSourceConfig:
    source = load_source(_write(tmp_path, text), "pipedrive", ENV)
    assert isinstance(source, RestSourceConfig)
    return source


def test_a_rest_source_loads_with_every_pagination_type(tmp_path: Path) -> None:
    source = _load(tmp_path)
    assert (source.name, source.scope, source.format) == ("pipedrive", "acme-eu", "parquet")
    assert source.base_url == "http://127.0.0.1:8080/v1"
    assert source.headers == {"Authorization": "Bearer tok-12345"}
    assert source.params == (("api_token", "tok-12345"),)
    assert source.secrets == {"tok-12345"}
    assert (source.requests_per_second, source.timeout_seconds, source.tenant) == (10, 5, "acme")
    assert source.retries == RetryPolicy(3, 0.25, 30.0, 300.0)
    deals, tickets, persons, users = source.entities
    assert source.url(deals) == "http://127.0.0.1:8080/v1/deals"
    assert deals.params == (("limit", "100"), ("archived", "false"))
    assert deals.pagination == OffsetPagination(
        100, "start", "limit", 0, "additional_data.pagination.more_items_in_collection"
    )
    assert deals.incremental == Incremental(
        "since", "update_time", "timestamp", "%Y-%m-%d %H:%M:%S"
    )
    assert (deals.primary_key, deals.lookback, deals.chunk_rows) == (
        ("id",),
        dt.timedelta(minutes=10),
        5000,
    )
    assert tickets.pagination == CursorPagination("after_cursor", "cursor", "end_of_stream", True)
    assert tickets.incremental is not None
    assert tickets.incremental.initial == "1970-01-01T00:00:00+00:00"
    assert (tickets.tenant_field, tickets.chunk_rows) == ("account_id", 250)
    assert persons.pagination == PagePagination("page", 1, "per_page", 50, None)
    assert persons.incremental is None
    assert users.pagination == LinkPagination("next")
    assert users.incremental == Incremental("since_id", "meta.id", "id", "iso", "5")
    assert users.lookback == 3
    with pytest.raises(ConfigError, match=r"no entity 'leads' \(it has: deals, tickets"):
        source.entity("leads")


def test_a_file_without_kind_is_still_a_sql_source(tmp_path: Path) -> None:
    text = (
        "url: sqlite:///x.db\nscope: eu1\n"
        "tables:\n  - {entity: t, table: t, watermark: {column: id, kind: id}}\n"
    )
    assert isinstance(load_source(_write(tmp_path, text, "crm.yml"), "crm", {}), SourceConfig)
    sql = load_source(_write(tmp_path, "kind: sql\n" + text, "erp.yml"), "erp", {})
    assert isinstance(sql, SourceConfig)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "kind: rest",
            "kind: soap",
            "sources/pipedrive.yml:2: kind must be sql or rest, not 'soap'",
        ),
        (
            "${VENDOR_URL}/v1",
            "${NOPE}/v1",
            "sources/pipedrive.yml:3: base_url: environment variable NOPE",
        ),
        (
            "${VENDOR_URL}/v1",
            "ftp://x/v1",
            "sources/pipedrive.yml:3: base_url must be an http(s) URL",
        ),
        ("scope: acme-eu", "scope: Acme EU", "sources/pipedrive.yml:4: scope: invalid scope"),
        ("format: parquet", "format: csv", "sources/pipedrive.yml:5: format 'csv' is not one of"),
        (
            '"Bearer ${PD_TOKEN}"',
            '"Bearer ${PD_TOKN}"',
            "sources/pipedrive.yml:6: headers.Authorization: environment variable PD_TOKN",
        ),
        (
            "requests_per_second: 10",
            "requests_per_second: 0",
            "sources/pipedrive.yml:8: rate_limit.requests_per_second must be a number > 0",
        ),
        (
            "max_attempts: 3",
            "max_attempts: 0",
            "sources/pipedrive.yml:9: retries.max_attempts must be an integer >= 1",
        ),
        (
            "backoff_seconds: 0.25",
            "backof_seconds: 0.25",
            "sources/pipedrive.yml:9: unknown key 'backof_seconds' (did you mean 'backoff_",
        ),
        ("tenant: acme", "tenant: ACME", "sources/pipedrive.yml:11: tenant: invalid tenant"),
        (
            "name: pipedrive\n",
            "name: pipedrive\nurl: x\n",
            "sources/pipedrive.yml:2: 'url' is for kind: sql sources",
        ),
        (
            "    path: /deals",
            "    path: deals",
            "sources/pipedrive.yml:14: path must start with '/'",
        ),
        ("    path: /deals\n", "", "sources/pipedrive.yml:13: an entity needs 'path'"),
        (
            "    records: data\n    params: {limit",
            "    records: data.\n    params: {limit",
            "sources/pipedrive.yml:15: records must be a dotted path",
        ),
        (
            "params: {limit: 100, archived: false}",
            "params: {limit: [1]}",
            "sources/pipedrive.yml:16: params.limit must be text or a number",
        ),
        (
            "{type: offset,",
            "{type: scroll,",
            "sources/pipedrive.yml:17: pagination.type must be one of none, cursor, page, "
            "offset, link, not 'scroll'",
        ),
        (
            "limit_param: limit, limit: 100,",
            "limit_param: limit,",
            "sources/pipedrive.yml:17: offset pagination needs 'limit'",
        ),
        (
            "offset_param: start,",
            "offset_param: start, cursor_path: x,",
            "sources/pipedrive.yml:17: unknown key 'cursor_path'",
        ),
        (
            'format: "%Y-%m-%d %H:%M:%S"',
            'format: "%H:%M"',
            "sources/pipedrive.yml:20: incremental.format must be iso, unix or a strftime pattern",
        ),
        (
            "kind: timestamp,",
            "kind: date,",
            "sources/pipedrive.yml:19: incremental.kind must be timestamp or id, not 'date'",
        ),
        (
            "{param: since, watermark_field: update_time,",
            "{param: since,",
            "sources/pipedrive.yml:19: incremental needs 'watermark_field'",
        ),
        (
            "lookback: 10m",
            "lookback: soon",
            "sources/pipedrive.yml:22: lookback must be a duration",
        ),
        (
            "    tenant_field: account_id",
            "    tenant_column: account_id",
            "sources/pipedrive.yml:29: 'tenant_column' is for kind: sql sources; "
            "a REST entity has 'tenant_field'",
        ),
        (
            "cursor_only: true}",
            "cursor_only: yes please}",
            "sources/pipedrive.yml:27: pagination.cursor_only must be true or false",
        ),
        (
            "chunk_rows: 250",
            "chunk_rows: -1",
            "sources/pipedrive.yml:30: chunk_rows must be a positive integer",
        ),
        (
            "format: unix, initial: 0}",
            "format: unix, initial: someday}",
            "sources/pipedrive.yml:28: incremental.initial: 'someday' is not a timestamp",
        ),
        (
            "size_param: per_page, size: 50}",
            "size_param: per_page}",
            "sources/pipedrive.yml:34: page pagination takes 'size_param' and 'size' together",
        ),
        (
            "kind: id, initial: 5}",
            "kind: id, format: unix}",
            "sources/pipedrive.yml:39: incremental.format is for timestamps only",
        ),
        (
            "    lookback: 3\n",
            "    lookback: 3m\n",
            "sources/pipedrive.yml:40: lookback of an id watermark",
        ),
        (
            "  - entity: users",
            "  - entity: persons",
            "sources/pipedrive.yml:35: entity 'persons' is declared twice",
        ),
    ],
)
def test_rest_config_errors_name_file_and_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ProjectError) as caught:
        load_source(tmp_path, "pipedrive", ENV)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_lookback_without_incremental_and_missing_entities_are_errors(tmp_path: Path) -> None:
    text = (
        "kind: rest\nbase_url: http://x\nscope: s\n"
        "entities:\n  - {entity: a, path: /a, lookback: 1m}\n"
    )
    with pytest.raises(
        ProjectError, match=r"^sources/pipedrive.yml:5: lookback needs 'incremental'"
    ):
        _load(tmp_path, text)
    with pytest.raises(
        ProjectError, match=r"^sources/pipedrive.yml:1: 'entities' must be a non-empty"
    ):
        _load(tmp_path, "kind: rest\nbase_url: http://x\nscope: s\n")


# -- the pure rules -----------------------------------------------------------------------


def _req(*params: tuple[str, str], url: str = "http://h/v1/x") -> PageRequest:
    return PageRequest(url, params)


def test_offset_pagination_advances_by_records_received_and_stops_on_the_flag() -> None:
    flagged = OffsetPagination(100, "start", "limit", more="meta.more")
    first = flagged.first((("q", "1"),))
    assert first == (("q", "1"), ("start", "0"), ("limit", "100"))
    nxt = flagged.following(_req(*first), {"meta": {"more": True}}, {}, 100)
    assert nxt == _req(("q", "1"), ("start", "100"), ("limit", "100"))
    assert flagged.following(_req(*first), {"meta": {"more": False}}, {}, 100) is None
    assert flagged.following(_req(*first), {"meta": {"more": True}}, {}, 0) is None
    with pytest.raises(
        BadResponseError,
        match=r"no more flag 'meta.more' in the response \(an object with keys: data\)",
    ):
        flagged.following(_req(*first), {"data": []}, {}, 3)
    short = OffsetPagination(100)
    assert short.following(_req(("offset", "0"), ("limit", "100")), {}, {}, 99) is None
    assert short.following(_req(("offset", "0"), ("limit", "100")), {}, {}, 100) == _req(
        ("offset", "100"), ("limit", "100")
    )


def test_page_pagination_stops_on_a_short_or_empty_page() -> None:
    pages = PagePagination("p", 1, "size", 2)
    first = pages.first(())
    assert first == (("p", "1"), ("size", "2"))
    assert pages.following(_req(*first), [], {}, 2) == _req(("p", "2"), ("size", "2"))
    assert pages.following(_req(*first), [], {}, 1) is None
    assert PagePagination().following(_req(("page", "4")), [], {}, 7) == _req(("page", "5"))
    assert PagePagination().following(_req(("page", "4")), [], {}, 0) is None


def test_cursor_pagination_ends_on_flag_null_or_repeated_cursor() -> None:
    zendesk = CursorPagination("after_cursor", "cursor", "end_of_stream", cursor_only=True)
    first = _req(("start_time", "0"), ("per_page", "2"))
    body = {"after_cursor": "abc", "end_of_stream": False}
    assert zendesk.following(first, body, {}, 2) == _req(("cursor", "abc"))
    assert zendesk.following(first, body | {"end_of_stream": True}, {}, 2) is None
    assert zendesk.following(_req(("cursor", "abc")), body, {}, 0) is None
    keep = CursorPagination("meta.next", "after")
    assert keep.following(first, {"meta": {"next": 42}}, {}, 2) == _req(
        ("start_time", "0"), ("per_page", "2"), ("after", "42")
    )
    assert keep.following(first, {"meta": {"next": None}}, {}, 2) is None
    assert keep.following(first, {"meta": {}}, {}, 2) is None


def test_link_pagination_follows_rel_next_with_its_query() -> None:
    links = {"next": "http://h/v1/x?page=2&per_page=5&include%5B%5D=a&include%5B%5D=b"}
    nxt = LinkPagination().following(_req(("page", "1")), {}, links, 5)
    assert nxt == PageRequest(
        "http://h/v1/x", (("page", "2"), ("per_page", "5"), ("include[]", "a"), ("include[]", "b"))
    )
    assert LinkPagination().following(_req(("page", "1")), {}, {"prev": "http://h/x"}, 5) is None
    assert LinkPagination("after").following(_req(), {}, {"after": "http://h/y"}, 1) == PageRequest(
        "http://h/y", ()
    )
    assert Pagination().following(_req(), {}, links, 5) is None


def test_incremental_param_values_per_format() -> None:
    wm = "2026-01-01T12:30:45.500000+00:00"
    ten = dt.timedelta(minutes=10)
    assert (
        Incremental("s", "u", format="%Y-%m-%d %H:%M:%S").param_value(wm, ten)
        == "2026-01-01 12:20:45"
    )
    assert Incremental("s", "u").param_value(wm, ten) == "2026-01-01T12:20:45Z"
    assert Incremental("s", "u", format="unix").param_value(wm, dt.timedelta(0)) == "1767270645"
    assert Incremental("s", "u", kind="id").param_value("100", 7) == "93"
    parse = Incremental("s", "u", format="%d/%m/%Y %H:%M").parse
    assert parse("02/01/2026 10:00") == dt.datetime(2026, 1, 2, 10, 0, tzinfo=dt.UTC)
    assert parse("2026-01-02T10:00:00+02:00") == dt.datetime(2026, 1, 2, 8, 0, tzinfo=dt.UTC)
    assert parse(1767270645) == dt.datetime(2026, 1, 1, 12, 30, 45, tzinfo=dt.UTC)
    for bad in ("tomorrow", True, [1], float("nan")):
        with pytest.raises(ValueError, match="is not a timestamp"):
            parse(bad)
    with pytest.raises(ValueError, match="is not an integer id"):
        Incremental("s", "u", kind="id").parse("12a")


@given(
    moment=st.datetimes(
        min_value=dt.datetime(1990, 1, 1),
        max_value=dt.datetime(2090, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    fmt=st.sampled_from(["iso", "unix", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M"]),
    minutes=st.integers(0, 600),
)
def test_the_param_never_asks_for_less_than_watermark_minus_lookback(
    moment: dt.datetime, fmt: str, minutes: int
) -> None:
    """Rounding only widens the window: the bound the API sees is at or before the exact
    bound, and less than a minute (the coarsest format) before it."""
    incremental = Incremental("since", "updated", format=fmt)
    lookback = dt.timedelta(minutes=minutes)
    sent = incremental.param_value(incremental.text(moment), lookback)
    bound = incremental.parse(int(sent) if fmt == "unix" else sent)
    exact = moment - lookback
    assert isinstance(bound, dt.datetime)
    assert exact - dt.timedelta(minutes=1) < bound <= exact
