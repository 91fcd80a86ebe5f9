"""Envelope rules and the event type -> table mapping (pure)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from strata.ingest.events import InvalidEventError, parse_event, table_for_type


def env(**over: object) -> bytes:
    e: dict[str, object] = {
        "event_id": "e1",
        "type": "melmastoon.reservation.created.v1",
        "tenant_id": "acme",
        "occurred_at": "2026-03-04T23:30:00-02:00",
        "payload": {"b": 1, "a": [1, 2]},
    }
    e.update(over)
    return json.dumps({k: v for k, v in e.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("etype", "table"),
    [
        ("melmastoon.reservation.created.v1", "reservation_created_v1"),
        ("melmastoon.ai.forecast.produced.v1", "ai_forecast_produced_v1"),
        ("Melmastoon.Lock-Action.Done.V2", "lock_action_done_v2"),
        ("melmastoon.1st.thing", "e_1st_thing"),
        ("single", "single"),
    ],
)
def test_type_to_table(etype: str, table: str) -> None:
    assert table_for_type(etype) == table


@pytest.mark.parametrize("etype", ["", "a..b", "a.b c", "x." + "y" * 80, "a/b"])
def test_bad_types(etype: str) -> None:
    with pytest.raises(InvalidEventError):
        table_for_type(etype)


def test_valid_envelope_normalises_time_and_payload() -> None:
    ev = parse_event(env())
    assert ev.table == "reservation_created_v1"
    assert ev.occurred_at == dt.datetime(2026, 3, 5, 1, 30, tzinfo=dt.UTC)
    assert ev.day == dt.date(2026, 3, 5)
    assert ev.payload_json == '{"a":[1,2],"b":1}'
    assert ev.key == ("reservation_created_v1", "acme", dt.date(2026, 3, 5))
    assert parse_event(env(tenant_id=42)).tenant_id == "42"


@pytest.mark.parametrize(
    ("raw", "tenant", "fragment"),
    [
        (b"not json", None, "not JSON"),
        (b"[1]", None, "not a JSON object"),
        (env(payload=...), "acme", "missing envelope fields: payload"),
        (env(tenant_id="ACME"), None, "invalid tenant_id"),
        (env(tenant_id=...), None, "missing"),
        (env(occurred_at="yesterday"), "acme", "not an ISO-8601"),
        (env(occurred_at="2026-03-04T10:00:00"), "acme", "no UTC offset"),
        (env(event_id=""), "acme", "invalid event_id"),
        (env(type="bad type"), "acme", "invalid event type"),
    ],
)
def test_invalid_envelopes(raw: bytes, tenant: str | None, fragment: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_event(raw)
    assert fragment in info.value.reason
    assert info.value.tenant == tenant
