"""The hospitality example end to end: domain events landed through the SDK, every model
built, and the gold numbers checked against a reference computed here in plain Python from
the generated events (deduplicated by event_id, ordered by occurred_at)."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp

from strata.demo.hospitality import DomainEvent, generate, land_events
from strata.quality.gate import run_checked
from strata.transform.project import load_project
from strata.transform.runner import RunSummary
from strata.transform.tables import read_table, table_path

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "hospitality"
SEED, SCALE = 11, 0.5
TENANT = "tenant_id"
GOLD = (
    "dim_calendar",
    "dim_property",
    "dim_room_type",
    "fact_housekeeping_task",
    "fact_payment",
    "fact_reservation",
    "fact_room_night",
)
SILVER = (
    "housekeeping_tasks",
    "out_of_order_blocks",
    "payment_events",
    "properties",
    "reservation_events",
    "room_inventory",
    "room_types",
)
CLOSING = ("cancelled", "no_show", "checked_out")
LIFECYCLE = ("created", "checked_in", "checked_out", "cancelled", "no_show")
STATUS = {"created": "confirmed", "checked_in": "in_house"}
SOLD = ("confirmed", "in_house", "checked_out")
Row = dict[str, Any]


@dataclass(frozen=True)
class Built:
    delivered: list[DomainEvent]  # as landed: duplicates and late arrivals included
    summary: RunSummary
    project: Path
    lake: Path
    gold: dict[str, list[Row]]
    silver_rows: dict[str, int]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("hospitality")
    project = tmp / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("lake", ".strata"))
    lake = tmp / "lake"
    delivered = generate(SEED, SCALE)
    land_events(str(lake), tmp / "journal", delivered)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STRATA_LAKE", str(lake))
        env.setenv("STRATA_CATALOG_URL", f"sqlite:///{tmp / 'catalog.db'}")
        summary = run_checked(project)
    gold = {m: read_table(table_path(lake, "gold", m)).to_table().to_pylist() for m in GOLD}
    silver = {m: read_table(table_path(lake, "silver", m)).count_rows() for m in SILVER}
    return Built(delivered, summary, project, lake, gold, silver)


# -- the reference, computed from the events alone ----------------------------------------


def unique(events: list[DomainEvent]) -> list[DomainEvent]:
    seen: dict[str, DomainEvent] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return sorted(seen.values(), key=lambda e: (e.occurred_at, e.event_id))


def kind(event: DomainEvent) -> str:
    return event.type.split(".")[-2]


def family(event: DomainEvent) -> str:
    return event.type.split(".")[1]


def day(text: object) -> date:
    assert isinstance(text, str)
    return date.fromisoformat(text)


def expected_reservations(events: list[DomainEvent]) -> dict[tuple[str, str], Row]:
    """The latest state of each reservation, by the rules the README states."""
    grouped: dict[tuple[str, str], list[DomainEvent]] = defaultdict(list)
    for e in unique(events):
        if family(e) == "reservation":
            grouped[(e.tenant_id, str(e.payload["reservation_id"]))].append(e)
    out = {}
    for key, evs in grouped.items():
        closes = [e.occurred_at for e in evs if kind(e) in CLOSING]
        closed_at = min(closes) if closes else None
        changes = [e for e in evs if kind(e) in ("created", "modified")]
        applied = [e for e in changes if closed_at is None or e.occurred_at <= closed_at]
        stay = applied[-1].payload
        last = [kind(e) for e in evs if kind(e) in LIFECYCLE][-1]
        status = STATUS.get(last, last)
        arrival, departure = day(stay["arrival_date"]), day(stay["departure_date"])
        nights = (departure - arrival).days
        rate = Decimal(str(stay["nightly_rate"]))
        created = next(e for e in evs if kind(e) == "created")
        out[key] = {
            "property_id": stay["property_id"],
            "room_type_id": stay["room_type_id"],
            "arrival_date": arrival,
            "departure_date": departure,
            "nightly_rate": rate,
            "status": status,
            "channel": created.payload["channel"],
            "nights": nights,
            "is_sold": status in SOLD,
            "room_revenue": rate * nights if status in SOLD else Decimal(0),
            "ignored_modifications": len(changes) - len(applied),
        }
    return out


def expected_room_nights(events: list[DomainEvent]) -> dict[tuple[str, str, date], Row]:
    """Inventory, out-of-order, available and sold rooms per (tenant, room type, night)."""
    evs = unique(events)
    settings: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
    blocks: dict[tuple[str, str], dict[str, object]] = {}
    for e in evs:  # in occurrence order: the later event overwrites the earlier
        if e.type.endswith("room_inventory.set.v1"):
            key = (e.tenant_id, str(e.payload["room_type_id"]))
            settings[key][day(e.payload["effective_from"])] = int(str(e.payload["rooms"]))
        elif e.type.endswith("rooms.out_of_order.v1"):
            blocks[(e.tenant_id, str(e.payload["block_id"]))] = dict(e.payload)
    reservations = expected_reservations(events)
    horizon: dict[str, date] = {}
    for (tenant, _), r in reservations.items():
        horizon[tenant] = max(horizon.get(tenant, r["departure_date"]), r["departure_date"])
    out: dict[tuple[str, str, date], Row] = {}
    for (tenant, room_type), by_date in settings.items():
        night = min(by_date)
        while night < horizon[tenant]:
            inventory = by_date[max(d for d in by_date if d <= night)]
            blocked = sum(
                int(str(b["rooms"]))
                for (t, _), b in blocks.items()
                if t == tenant
                and b["room_type_id"] == room_type
                and day(b["from_date"]) <= night < day(b["to_date"])
            )
            out[(tenant, room_type, night)] = {
                "rooms_inventory": inventory,
                "rooms_out_of_order": min(blocked, inventory),
                "rooms_available": inventory - min(blocked, inventory),
                "rooms_sold": 0,
                "room_revenue": Decimal(0),
            }
            night += timedelta(days=1)
    for (tenant, _), r in reservations.items():
        if not r["is_sold"]:
            continue
        for n in range(r["nights"]):
            row = out[(tenant, r["room_type_id"], r["arrival_date"] + timedelta(days=n))]
            row["rooms_sold"] += 1
            row["room_revenue"] += r["nightly_rate"]
    return out


def by_tenant(rows: list[Row], column: str) -> dict[str, Any]:
    totals: dict[str, Any] = defaultdict(int)
    for row in rows:
        totals[row[TENANT]] += row[column]
    return dict(totals)


# -- the tests -----------------------------------------------------------------------------


def test_every_model_builds(built: Built) -> None:
    statuses = {r.name: r.status for r in built.summary.results}
    assert set(statuses) == {*GOLD, *SILVER}
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert all(built.gold[m] for m in GOLD)
    for model in GOLD:  # every gold table carries the tenant key
        assert all(row[TENANT] for row in built.gold[model]), model


def test_silver_keeps_each_event_once(built: Built) -> None:
    delivered_ids = [e.event_id for e in built.delivered]
    assert len(delivered_ids) > len(set(delivered_ids))  # the stream has redeliveries
    model_of = {
        "property": "properties",
        "room_type": "room_types",
        "room_inventory": "room_inventory",
        "rooms": "out_of_order_blocks",
        "reservation": "reservation_events",
        "payment": "payment_events",
        "task": "housekeeping_tasks",
    }
    unique_events = Counter(model_of[e.type.split(".")[-3]] for e in unique(built.delivered))
    assert built.silver_rows == dict(unique_events)


def test_reservations_match_the_reference(built: Built) -> None:
    expected = expected_reservations(built.delivered)
    actual = {(r[TENANT], r["reservation_id"]): r for r in built.gold["fact_reservation"]}
    assert actual.keys() == expected.keys()
    for key, want in expected.items():
        got = {column: actual[key][column] for column in want}
        assert got == want, key
    for tenant in {t for t, _ in expected}:
        mine = [r for (t, _), r in expected.items() if t == tenant]
        rows = [r for r in built.gold["fact_reservation"] if r[TENANT] == tenant]
        assert sum(r["cancellations"] for r in rows) == sum(
            r["status"] == "cancelled" for r in mine
        )
        assert sum(r["room_nights_sold"] for r in rows) == sum(
            r["nights"] for r in mine if r["is_sold"]
        )
    statuses = Counter(r["status"] for r in built.gold["fact_reservation"])
    assert set(statuses) == {"confirmed", "in_house", "checked_out", "cancelled", "no_show"}


def test_room_nights_match_the_reference(built: Built) -> None:
    expected = expected_room_nights(built.delivered)
    rows = built.gold["fact_room_night"]
    actual = {(r[TENANT], r["room_type_id"], r["stay_date"]): r for r in rows}
    assert len(actual) == len(rows)
    assert actual.keys() == expected.keys()
    for key, want in expected.items():
        got = {column: actual[key][column] for column in want}
        assert got == want, key
    # Capacity: nothing is sold beyond the rooms available, out-of-order rooms excluded.
    assert all(r["rooms_sold"] <= r["rooms_available"] for r in rows)
    # Room nights sold in the night grain equal those of the reservation grain, per tenant.
    assert by_tenant(rows, "rooms_sold") == by_tenant(
        built.gold["fact_reservation"], "room_nights_sold"
    )
    assert by_tenant(rows, "room_revenue") == by_tenant(
        built.gold["fact_reservation"], "room_revenue"
    )


def test_out_of_order_rooms_are_not_available(built: Built) -> None:
    rows = {
        (r[TENANT], r["room_type_id"], r["stay_date"]): r for r in built.gold["fact_room_night"]
    }
    versions: dict[str, list[DomainEvent]] = defaultdict(list)
    for e in unique(built.delivered):
        if e.type.endswith("rooms.out_of_order.v1"):
            versions[str(e.payload["block_id"])].append(e)
    assert len(versions) >= 3
    blocked_nights = 0
    for events in versions.values():
        final = events[-1].payload
        tenant, room_type = events[-1].tenant_id, str(final["room_type_id"])
        night = day(final["from_date"])
        while night < day(final["to_date"]):
            row = rows.get((tenant, room_type, night))
            if row is not None:
                assert row["rooms_out_of_order"] >= min(int(str(final["rooms"])), 1)
                assert row["rooms_available"] == row["rooms_inventory"] - row["rooms_out_of_order"]
                blocked_nights += 1
            night += timedelta(days=1)
    assert blocked_nights > 0
    # A block re-sent with a new end date: the version that happened last wins.
    resent = [events for events in versions.values() if len(events) > 1]
    assert resent
    for events in resent:
        first, last = events[0].payload, events[-1].payload
        tenant, room_type = events[0].tenant_id, str(first["room_type_id"])
        old_end, new_end = day(first["to_date"]), day(last["to_date"])
        assert old_end != new_end
        others = [
            v[-1].payload
            for v in versions.values()
            if v is not events and v[-1].tenant_id == tenant
        ]
        for night in (
            min(old_end, new_end) + timedelta(days=k) for k in range(abs((new_end - old_end).days))
        ):
            row = rows.get((tenant, room_type, night))
            covered = any(
                o["room_type_id"] == room_type and day(o["from_date"]) <= night < day(o["to_date"])
                for o in others
            )
            if row is None or covered:
                continue
            want = int(str(first["rooms"])) if night < new_end else 0
            assert row["rooms_out_of_order"] == min(want, row["rooms_inventory"])


def test_inventory_correction_wins_though_delivered_first(built: Built) -> None:
    settings: dict[tuple[str, str, str], list[DomainEvent]] = defaultdict(list)
    for e in unique(built.delivered):
        if e.type.endswith("room_inventory.set.v1"):
            key = (e.tenant_id, str(e.payload["room_type_id"]), str(e.payload["effective_from"]))
            settings[key].append(e)
    corrected = {k: v for k, v in settings.items() if len(v) > 1}
    assert len(corrected) == 3  # one per tenant
    order = {e.event_id: i for i, e in reversed(list(enumerate(built.delivered)))}
    rows = {
        (r[TENANT], r["room_type_id"], r["stay_date"]): r for r in built.gold["fact_room_night"]
    }
    for (tenant, room_type, since), (wrong, right) in corrected.items():
        assert order[right.event_id] < order[wrong.event_id]  # the correction arrived first
        row = rows[(tenant, room_type, date.fromisoformat(since))]
        assert row["rooms_inventory"] == right.payload["rooms"] != wrong.payload["rooms"]


def test_redelivered_payments_count_once(built: Built) -> None:
    payments = [e for e in built.delivered if family(e) == "billing"]
    ids = Counter(e.event_id for e in payments)
    assert any(n > 1 for n in ids.values())  # some payments were delivered twice

    def net(e: DomainEvent) -> Decimal:
        amount = Decimal(str(e.payload["amount"]))
        return -amount if kind(e) == "refunded" else amount

    naive: dict[str, Decimal] = defaultdict(Decimal)
    once: dict[str, Decimal] = defaultdict(Decimal)
    for e in payments:
        naive[e.tenant_id] += net(e)
    for e in unique(payments):
        once[e.tenant_id] += net(e)
    assert by_tenant(built.gold["fact_payment"], "net_amount") == once != naive
    refunds = [r for r in built.gold["fact_payment"] if r["kind"] == "refund"]
    assert refunds
    assert all(r["net_amount"] < 0 for r in refunds)


def test_late_and_racing_events_are_ordered_by_occurrence(built: Built) -> None:
    reservations = {(r[TENANT], r["reservation_id"]): r for r in built.gold["fact_reservation"]}
    per_reservation: dict[tuple[str, str], list[DomainEvent]] = defaultdict(list)
    for e in built.delivered:  # delivery order
        if family(e) == "reservation":
            per_reservation[(e.tenant_id, str(e.payload["reservation_id"]))].append(e)
    reversed_mods = checkout_first = 0
    for key, evs in per_reservation.items():
        mods = [e for e in evs if kind(e) == "modified"]
        if len(mods) == 2 and mods[0].occurred_at > mods[1].occurred_at:
            reversed_mods += 1  # the later change arrived first and still wins
            latest = max(mods, key=lambda e: e.occurred_at)
            if reservations[key]["ignored_modifications"] == 0:
                assert reservations[key]["nightly_rate"] == Decimal(
                    str(latest.payload["nightly_rate"])
                )
        names = [kind(e) for e in evs]
        if "checked_out" in names and names.index("checked_out") < names.index("checked_in"):
            checkout_first += 1
            assert reservations[key]["status"] == "checked_out"
    assert reversed_mods >= 3
    assert checkout_first >= 3


def test_modifications_after_cancellation_are_ignored(built: Built) -> None:
    rows = {(r[TENANT], r["reservation_id"]): r for r in built.gold["fact_reservation"]}
    raced = 0
    per_reservation: dict[tuple[str, str], list[DomainEvent]] = defaultdict(list)
    for e in unique(built.delivered):
        if family(e) == "reservation":
            per_reservation[(e.tenant_id, str(e.payload["reservation_id"]))].append(e)
    for key, evs in per_reservation.items():
        cancelled = [e for e in evs if kind(e) == "cancelled"]
        late = [
            e
            for e in evs
            if kind(e) == "modified" and cancelled and e.occurred_at > cancelled[0].occurred_at
        ]
        if not late:
            continue
        raced += 1
        before = [e for e in evs if kind(e) in ("created", "modified") and e not in late][-1]
        row = rows[key]
        assert row["status"] == "cancelled"
        assert row["ignored_modifications"] == len(late)
        assert row["arrival_date"] == day(before.payload["arrival_date"])
        assert row["departure_date"] == day(before.payload["departure_date"])
        assert row["nightly_rate"] == Decimal(str(before.payload["nightly_rate"]))
        assert row["arrival_date"] != day(late[-1].payload["arrival_date"])
    assert raced >= 3  # at least one per tenant


def test_tenants_never_mix(built: Built) -> None:
    owner: dict[str, str] = {}  # every id a tenant's events name -> that tenant
    for e in unique(built.delivered):
        for field in ("property_id", "room_type_id", "reservation_id", "payment_id", "task_id"):
            value = e.payload.get(field)
            if isinstance(value, str):
                assert owner.setdefault(value, e.tenant_id) == e.tenant_id
    tenants = {e.tenant_id for e in built.delivered}
    assert len(tenants) == 3
    for model, rows in built.gold.items():
        assert {r[TENANT] for r in rows} == tenants, model
        for row in rows:
            for field in ("property_id", "room_type_id", "reservation_id", "payment_id", "task_id"):
                value = row.get(field)
                if value is not None:
                    assert owner[value] == row[TENANT], (model, field, value)
    # Tenant-partitioned tables: each partition folder holds its own tenant's rows only.
    for model in GOLD:
        for part in read_table(table_path(built.lake, "gold", model)).files:
            folder = next(p for p in Path(part).parts if p.startswith(f"{TENANT}="))
            assert folder.split("=", 1)[1] in tenants


def test_dimensions_cover_the_facts(built: Built) -> None:
    properties = {(r[TENANT], r["property_id"]) for r in built.gold["dim_property"]}
    room_types = {(r[TENANT], r["room_type_id"]) for r in built.gold["dim_room_type"]}
    calendar = {(r[TENANT], r["calendar_date"]) for r in built.gold["dim_calendar"]}
    for fact, date_column in (
        ("fact_room_night", "stay_date"),
        ("fact_reservation", "arrival_date"),
        ("fact_payment", "paid_on"),
        ("fact_housekeeping_task", "completed_on"),
    ):
        for row in built.gold[fact]:
            assert (row[TENANT], row["property_id"]) in properties, fact
            assert (row[TENANT], row[date_column]) in calendar, fact
            if "room_type_id" in row:
                assert (row[TENANT], row["room_type_id"]) in room_types, fact


# -- metric definitions: a structural check (the registry's loader validates them fully) ---


def explore_columns(built: Built) -> dict[str, set[str]]:
    """Each explore's columns: the fact's, plus each dimension's other columns (keys left
    out, a taken name prefixed with ``<dimension>__``)."""
    project = load_project(built.project, environ={"STRATA_LAKE": str(built.lake)})
    schema = {m: read_table(table_path(built.lake, "gold", m)).schema.names for m in GOLD}
    columns = {}
    for name, explore in project.explores.items():
        taken = set(schema[explore.fact])
        for dim in explore.dimensions:
            skipped = {*dim.dimension_key, TENANT}
            for column in schema[dim.model]:
                if column not in skipped:
                    taken.add(column if column not in taken else f"{dim.model}__{column}")
        columns[name] = taken
    return columns


def sql_columns(sql: str) -> Iterator[str]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    assert not list(tree.find_all(exp.Select, exp.AggFunc)), sql
    return (c.name for c in tree.find_all(exp.Column))


def test_metric_files_reference_existing_explores_and_columns(built: Built) -> None:
    columns = explore_columns(built)
    assert set(columns) == {"room_nights", "reservations", "payments", "housekeeping"}
    files = sorted((built.project / "metrics").glob("*.yml"))
    keys = {f.stem for f in files}
    assert keys >= {"occupancy", "adr", "revpar", "alos", "cancellation_rate", "no_show_rate"}
    assert keys & {"channel_mix", "room_revenue_by_channel"}
    for path in files:
        metric = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert metric["key"] == path.stem
        assert isinstance(metric["version"], int)
        assert metric["version"] >= 1
        assert metric["description"]
        assert metric["owner"]
        assert metric["type"] in ("simple", "ratio", "cumulative")
        available = columns[metric["explore"]]
        assert metric["time_dimension"] in available, path.name
        assert set(metric["dimensions"]) <= available, path.name
        assert set(metric["grains"]) <= {"day", "week", "month", "quarter", "year"}
        measures = ("numerator", "denominator") if metric["type"] == "ratio" else ("measure",)
        sql = [metric[m]["expr"] for m in measures] + list(metric.get("filters", []))
        for m in measures:
            assert metric[m]["agg"] in ("sum", "count", "count_distinct", "avg", "min", "max")
        for text in sql:
            assert set(sql_columns(text)) <= available, (path.name, text)
        assert json.dumps(metric)  # plain YAML: no dates or custom tags
