"""Tests for the deterministic hotel property-management (seed 004) event generator."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strata.cli.main import app
from strata.core.errors import ConfigError
from strata.demo.hospitality import (
    EVENT_TYPES,
    FUTURE_NIGHTS,
    PAST_NIGHTS,
    DomainEvent,
    generate,
    plan_groups,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TYPE_RE = re.compile(r"melmastoon\.[a-z_]+(\.[a-z_]+)*\.v1")


@pytest.fixture(scope="module")
def events() -> list[DomainEvent]:
    return generate()


def kind(event: DomainEvent) -> str:
    return event.type.split(".")[-2]


def reservations(events: list[DomainEvent]) -> dict[tuple[str, str], list[DomainEvent]]:
    """Each reservation's events in delivery order (redeliveries included)."""
    out: dict[tuple[str, str], list[DomainEvent]] = defaultdict(list)
    for e in events:
        if e.type.startswith("melmastoon.reservation."):
            out[(e.tenant_id, str(e.payload["reservation_id"]))].append(e)
    return out


def test_same_inputs_give_identical_output() -> None:
    assert generate(3, 0.2) == generate(3, 0.2)
    assert generate(scale=0.2) == generate(scale=0.2, now=NOW)


def test_seed_and_now_change_the_output() -> None:
    base = generate(1, 0.2)
    assert base != generate(2, 0.2)
    assert base != generate(1, 0.2, now=NOW + timedelta(days=1))


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(now=datetime(2026, 1, 1))
    kabul = NOW.astimezone()  # the same instant in another zone
    assert generate(scale=0.1, now=kabul) == generate(scale=0.1)


@pytest.mark.parametrize("scale", [0, -1.0, math.nan, math.inf])
def test_invalid_scale_is_rejected(scale: float) -> None:
    with pytest.raises(ConfigError, match="scale"):
        generate(scale=scale)
    with pytest.raises(ConfigError, match="scale"):
        plan_groups(scale=scale)


def test_three_hotel_groups_of_different_sizes() -> None:
    groups = plan_groups()
    assert [len(g.properties) for g in groups] == [4, 2, 1]
    assert len({g.tenant for g in groups}) == 3
    for group in groups:
        for prop in group.properties:
            assert 2 <= len(prop.room_types) <= 4
            assert all(rt.rooms >= 1 for rt in prop.room_types)
    small = sum(
        rt.rooms for g in plan_groups(scale=0.25) for p in g.properties for rt in p.room_types
    )
    full = sum(rt.rooms for g in groups for p in g.properties for rt in p.room_types)
    assert small < full


def test_envelopes_are_well_formed(events: list[DomainEvent]) -> None:
    tenants = {g.tenant for g in plan_groups()}
    for event in events:
        record = event.envelope()
        assert set(record) == {"event_id", "type", "tenant_id", "occurred_at", "payload"}
        assert UUID_RE.fullmatch(event.event_id)
        assert TYPE_RE.fullmatch(event.type)
        assert event.type in EVENT_TYPES
        assert event.tenant_id in tenants
        assert event.occurred_at.tzinfo is not None
        assert event.occurred_at < NOW
        assert event.occurred_at.microsecond == 0
        assert isinstance(record["payload"], str)
        assert json.loads(record["payload"]) == event.payload
    assert {e.type for e in events} == set(EVENT_TYPES)


def test_a_few_thousand_reservations_within_the_window(events: list[DomainEvent]) -> None:
    booked = reservations(events)
    assert 2000 <= len(booked) <= 6000
    first, end = (
        NOW.date() - timedelta(days=PAST_NIGHTS),
        NOW.date() + timedelta(days=FUTURE_NIGHTS),
    )
    for evs in booked.values():
        created = next(e for e in evs if kind(e) == "created")
        arrival = date.fromisoformat(str(created.payload["arrival_date"]))
        departure = date.fromisoformat(str(created.payload["departure_date"]))
        assert first <= arrival < departure <= end
        assert created.occurred_at.date() <= arrival
    outcomes = Counter(kind(e) for evs in booked.values() for e in evs)
    for name in ("created", "modified", "cancelled", "checked_in", "checked_out", "no_show"):
        assert outcomes[name] > 0, name


def test_every_tenant_gets_every_kind_of_dirt(events: list[DomainEvent]) -> None:
    position: dict[str, int] = {}
    for i, e in enumerate(events):
        position.setdefault(e.event_id, i)
    found: dict[str, set[str]] = defaultdict(set)
    counts = Counter(e.event_id for e in events)
    latest: dict[str, datetime] = {}
    for e in events:
        if counts[e.event_id] > 1:
            found[e.tenant_id].add(f"duplicate {e.type.split('.')[-3]}")
        if e.occurred_at < latest.get(e.tenant_id, e.occurred_at):
            found[e.tenant_id].add("late")
        latest[e.tenant_id] = max(latest.get(e.tenant_id, e.occurred_at), e.occurred_at)
    for (tenant, _), evs in reservations(events).items():
        names = [kind(e) for e in evs]
        mods = [e for e in evs if kind(e) == "modified"]
        if len(mods) == 2 and mods[0].occurred_at > mods[1].occurred_at:
            found[tenant].add("modifications reversed")
        if {"checked_in", "checked_out"} <= set(names) and names.index("checked_out") < names.index(
            "checked_in"
        ):
            found[tenant].add("check-out before check-in")
        cancelled = [e.occurred_at for e in evs if kind(e) == "cancelled"]
        if cancelled and any(m.occurred_at > cancelled[0] for m in mods):
            found[tenant].add("modified after cancellation")
    settings: dict[tuple[str, str, object], list[DomainEvent]] = defaultdict(list)
    blocks: dict[object, set[object]] = defaultdict(set)
    for e in {e.event_id: e for e in events}.values():
        if kind(e) == "set":
            settings[
                (e.tenant_id, str(e.payload["room_type_id"]), e.payload["effective_from"])
            ].append(e)
        if kind(e) == "out_of_order":
            blocks[(e.tenant_id, e.payload["block_id"])].add(e.payload["to_date"])
    for (tenant, _, _), evs in settings.items():
        if len(evs) > 1:
            wrong, right = sorted(evs, key=lambda e: e.occurred_at)
            if position[right.event_id] < position[wrong.event_id]:
                found[tenant].add("correction delivered first")
    for (tenant, _), ends in blocks.items():
        if len(ends) > 1:
            found[tenant].add("block re-sent")
    expected = {
        "duplicate reservation",
        "duplicate payment",
        "late",
        "modifications reversed",
        "check-out before check-in",
        "modified after cancellation",
        "correction delivered first",
        "block re-sent",
    }
    for group in plan_groups():
        assert expected <= found[group.tenant], group.tenant


def test_demo_command_lands_the_example(tmp_path: Path) -> None:
    lake, journal = tmp_path / "lake", tmp_path / "journal"
    result = CliRunner().invoke(
        app,
        ["demo", "--example", "hospitality", "--scale", "0.1", "--lake", str(lake),
         "--journal-dir", str(journal)],
        env={"STRATA_LAKE": str(lake)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "pms.events" in result.stdout
    landed = int(result.stdout.split("Landed ", 1)[1].split()[0].replace(",", ""))
    assert landed == len(generate(scale=0.1))
    assert sorted(p.name for p in lake.joinpath("pms", "events").iterdir()) == [
        f"tenant={g.tenant}" for g in sorted(plan_groups(), key=lambda g: g.tenant)
    ]
