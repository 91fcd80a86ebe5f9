"""Deterministic demo data for a hotel property-management platform (seed 004).

Models "Ghasi Melmastoon": hotel groups are tenants; each runs 1-4 properties with room types
and room inventory. The platform's services publish domain events in one envelope::

    event_id     a UUID, unique per event (a redelivery repeats it)
    type         melmastoon.<aggregate>.<what happened>.v1
    tenant_id    the hotel group
    occurred_at  when it happened (UTC)
    payload      the event's own fields, as JSON text

The events (see ``EVENT_TYPES``) cover properties and room types, room inventory settings,
out-of-order room blocks, the reservation lifecycle (created, modified, cancelled,
checked_in, checked_out, no_show), payments captured and refunded, and housekeeping tasks.
Stay dates are a window of ``PAST_NIGHTS`` before ``now`` and ``FUTURE_NIGHTS`` after it, so
the data holds departed, in-house and future (on-the-books) reservations. Capacity is
respected: the reservations that hold a room (all but the cancelled) never exceed a room
type's inventory minus its out-of-order rooms on any night.

``generate`` is a pure function of ``(seed, scale, now)``: no I/O, no wall clock. It returns
the events in *delivery* order, with the dirt an event bus produces: redeliveries of the
same ``event_id`` (about 1%), late arrivals (about 2% arrive after events that occurred
later), and cases every tenant is guaranteed to have -- a reservation's second modification
delivered before its first, a check-out delivered before its check-in, an inventory
correction delivered before the wrong setting it corrects, an out-of-order block shortened
or extended by a later event, and a modification that occurred after the reservation was
cancelled (consumers must ignore it: a cancelled reservation is closed).

``land_events`` / ``land_hospitality`` land them through the ingest SDK, one client per
producing service, all into one bronze table ``pms.events`` (the raw sink of the seed).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Final

from strata.core.errors import ConfigError
from strata.demo.landing import PROGRESS_EVERY, DemoSummary, SourceSummary
from strata.ingest.client import IngestClient
from strata.ingest.config import IngestConfig
from strata.lake.inventory import inventory
from strata.lake.storage import LakeStorage, open_lake

__all__ = [
    "EVENT_TYPES",
    "FUTURE_NIGHTS",
    "NAMESPACE",
    "PAST_NIGHTS",
    "TABLE",
    "DomainEvent",
    "HotelGroup",
    "PropertyPlan",
    "RoomTypePlan",
    "generate",
    "land_events",
    "land_hospitality",
    "plan_groups",
]

NAMESPACE: Final = "pms"
TABLE: Final = "events"
PAST_NIGHTS: Final = 90  # stay nights before `now`'s date
FUTURE_NIGHTS: Final = 30  # ... and from it on
_PREFIX: Final = "melmastoon"
_DEFAULT_NOW: Final = datetime(2026, 11, 1, tzinfo=UTC)

# type -> the service that publishes it (the SDK's source_service).
EVENT_TYPES: Final[Mapping[str, str]] = {
    f"{_PREFIX}.property.created.v1": "property-service",
    f"{_PREFIX}.room_type.created.v1": "inventory-service",
    f"{_PREFIX}.inventory.room_inventory.set.v1": "inventory-service",
    f"{_PREFIX}.inventory.rooms.out_of_order.v1": "inventory-service",
    f"{_PREFIX}.reservation.created.v1": "reservation-service",
    f"{_PREFIX}.reservation.modified.v1": "reservation-service",
    f"{_PREFIX}.reservation.cancelled.v1": "reservation-service",
    f"{_PREFIX}.reservation.checked_in.v1": "reservation-service",
    f"{_PREFIX}.reservation.checked_out.v1": "reservation-service",
    f"{_PREFIX}.reservation.no_show.v1": "reservation-service",
    f"{_PREFIX}.billing.payment.captured.v1": "billing-service",
    f"{_PREFIX}.billing.payment.refunded.v1": "billing-service",
    f"{_PREFIX}.housekeeping.task.completed.v1": "housekeeping-service",
}

_LATE: Final = 0.02  # events delivered after some that occurred later
_DUPLICATE: Final = 0.01  # events delivered twice
_MODIFY: Final = 0.10
_SECOND_MODIFICATION: Final = 0.25
_MODIFY_AFTER_CANCEL: Final = 0.04
_STAYOVER_SERVICE: Final = 0.55
_DEMAND: Final = 1.0  # candidate room nights per available room night; capacity trims them
_REFUND_NOTICE: Final = timedelta(hours=48)  # cancelled this early, a deposit is refunded
_CENT: Final = Decimal("0.01")

# (tenant, name, brand, currency, id prefix, cities, rooms per property (min, max))
_GROUPS: Final = (
    ("safedkoh-hotels", "Safed Koh Hotels", "Safed Koh", "USD", "sk",
     ("Kabul", "Mazar-i-Sharif", "Jalalabad", "Kandahar"), (16, 26)),
    ("bamyan-lodges", "Bamyan Valley Lodges", "Valley Lodge", "USD", "bv",
     ("Bamyan", "Band-e-Amir"), (9, 15)),
    ("herat-caravan", "Herat Caravanserai", "Caravanserai", "AFN", "hc", ("Herat",), (12, 14)),
)  # fmt: skip
_CITY_CODES: Final = {
    "Kabul": "kbl", "Mazar-i-Sharif": "mzr", "Jalalabad": "jaa", "Kandahar": "kdh",
    "Bamyan": "bin", "Band-e-Amir": "bea", "Herat": "hea",
}  # fmt: skip
_AFN_PER_USD: Final = 70
# (code, name, max occupancy, share of a property's rooms, USD base rate range)
_ROOM_TYPES: Final = (
    ("STD", "Standard Double", 2, 0.45, (70, 95)),
    ("DLX", "Deluxe King", 2, 0.30, (100, 140)),
    ("FAM", "Family Room", 4, 0.15, (120, 165)),
    ("STE", "Suite", 3, 0.10, (190, 260)),
)
_CHANNELS: Final = ("direct", "booking_com", "expedia", "corporate", "gds", "phone", "walk_in")
_CHANNEL_WEIGHTS: Final = {  # per tenant: bigger groups sell more through OTAs and GDS
    "safedkoh-hotels": (22, 24, 14, 14, 8, 12, 6),
    "bamyan-lodges": (30, 26, 16, 2, 2, 14, 10),
    "herat-caravan": (38, 14, 4, 8, 0, 24, 12),
}
_CHANNEL_RATE: Final = {
    "direct": 0.97, "booking_com": 1.0, "expedia": 1.0, "corporate": 0.85, "gds": 0.95,
    "phone": 0.97, "walk_in": 1.08,
}  # fmt: skip
_CANCEL: Final = {
    "direct": 0.12, "booking_com": 0.24, "expedia": 0.22, "corporate": 0.10, "gds": 0.12,
    "phone": 0.12, "walk_in": 0.0,
}  # fmt: skip
_NO_SHOW: Final = {
    "direct": 0.03, "booking_com": 0.06, "expedia": 0.06, "corporate": 0.02, "gds": 0.04,
    "phone": 0.05, "walk_in": 0.0,
}  # fmt: skip
_DEPOSIT: Final = {
    "direct": 0.6, "booking_com": 0.4, "expedia": 0.45, "corporate": 0.1, "gds": 0.3,
    "phone": 0.5, "walk_in": 0.0,
}  # fmt: skip
_DEPOSIT_METHOD: Final = {
    "direct": "card", "booking_com": "virtual_card", "expedia": "virtual_card",
    "corporate": "bank_transfer", "gds": "card", "phone": "card",
}  # fmt: skip
_NIGHTS: Final = ((1, 2, 3, 4, 5, 6, 7, 10, 14), (28, 26, 18, 10, 7, 4, 4, 2, 1))
_CANCEL_REASONS: Final = ("guest_request", "travel_plans_changed", "duplicate_booking", "visa")
_BLOCK_REASONS: Final = ("renovation", "plumbing", "hvac", "electrical", "deep_clean")
_WEEKEND_NIGHTS: Final = (3, 4)  # Thursday and Friday nights: the weekend is Friday


@dataclass(frozen=True, slots=True)
class RoomTypePlan:
    room_type_id: str
    code: str
    name: str
    rooms: int  # the inventory set when the window opens
    base_rate: Decimal
    max_occupancy: int
    first_room: int  # room numbers are first_room, first_room + 1, ...


@dataclass(frozen=True, slots=True)
class PropertyPlan:
    property_id: str
    name: str
    city: str
    star_rating: int
    opened_on: date
    room_types: tuple[RoomTypePlan, ...]


@dataclass(frozen=True, slots=True)
class HotelGroup:
    tenant: str
    name: str
    currency: str
    properties: tuple[PropertyPlan, ...]


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One event as its service published it; ``payload`` holds JSON values only."""

    event_id: str
    type: str
    tenant_id: str
    occurred_at: datetime
    payload: Mapping[str, object]

    @property
    def source_service(self) -> str:
        return EVENT_TYPES[self.type]

    @property
    def name(self) -> str:
        """What happened: ``created`` for ``melmastoon.reservation.created.v1``."""
        return self.type.split(".")[-2]

    def envelope(self) -> dict[str, object]:
        """The record that lands in bronze: the envelope, payload as compact JSON text."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "tenant_id": self.tenant_id,
            "occurred_at": self.occurred_at,
            "payload": json.dumps(self.payload, sort_keys=True, separators=(",", ":")),
        }


def plan_groups(seed: int = 7, scale: float = 1.0) -> list[HotelGroup]:
    """The hotel groups (tenants) ``generate`` emits: 4, 2 and 1 properties.

    ``scale`` multiplies the rooms of every room type (at least one room each).
    """
    _check_scale(scale)
    groups = []
    for tenant, name, brand, currency, prefix, cities, (lo, hi) in _GROUPS:
        rng = random.Random(f"strata-hospitality:{seed}:{tenant}:plan")  # noqa: S311
        properties = []
        for city in cities:
            property_id = f"{prefix}-{_CITY_CODES[city]}"
            size = rng.randint(lo, hi) * scale
            kinds = _ROOM_TYPES[: rng.randint(2, 4)]
            share = sum(k[3] for k in kinds)
            room_types, first_room = [], 101
            for code, label, occupancy, part, (low, high) in kinds:
                rooms = max(1, round(size * part / share))
                usd = Decimal(rng.randint(low, high))
                rate = usd * _AFN_PER_USD if currency == "AFN" else usd
                room_types.append(
                    RoomTypePlan(
                        f"{property_id}-{code.lower()}",
                        code,
                        label,
                        rooms,
                        rate.quantize(_CENT),
                        occupancy,
                        first_room,
                    )
                )
                first_room += 100  # a floor per room type; rooms added later fit on it too
            opened = date(2026, 1, 1) - timedelta(days=rng.randint(400, 6000))
            properties.append(
                PropertyPlan(
                    property_id,
                    f"{brand} {city}",
                    city,
                    rng.choice((3, 4, 4, 5)),
                    opened,
                    tuple(room_types),
                )
            )
        groups.append(HotelGroup(tenant, name, currency, tuple(properties)))
    return groups


def generate(
    seed: int = 7, scale: float = 1.0, *, now: datetime | None = None
) -> list[DomainEvent]:
    """Every event of every tenant, in the order the bus delivers them (duplicates included)."""
    if now is None:
        now = _DEFAULT_NOW
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    events: list[DomainEvent] = []
    late_pairs: list[tuple[DomainEvent, DomainEvent]] = []
    duplicated: list[DomainEvent] = []
    for group in plan_groups(seed, scale):
        gen = _GroupGen(seed, group, now)
        gen.run()
        events += gen.events
        late_pairs += gen.late_pairs
        duplicated += gen.duplicated
    return _deliver(seed, events, late_pairs, duplicated)


def _deliver(
    seed: int,
    events: list[DomainEvent],
    late_pairs: list[tuple[DomainEvent, DomainEvent]],
    duplicated: list[DomainEvent],
) -> list[DomainEvent]:
    """Delivery order: by occurrence, with some events late and some delivered twice.

    ``late_pairs`` are (late, early) pairs whose ``late`` must arrive after ``early``;
    ``duplicated`` are delivered twice for sure.
    """
    rng = random.Random(f"strata-hospitality:{seed}:delivery")  # noqa: S311
    ordered = sorted(events, key=lambda e: e.occurred_at)  # stable: ties keep emission order
    position = {e.event_id: i for i, e in enumerate(ordered)}
    keys = [float(i) for i in range(len(ordered))]
    for i in range(len(ordered)):
        if rng.random() < _LATE:
            keys[i] = i + rng.randint(3, 200) + 0.5
    for late, early in late_pairs:
        i = position[late.event_id]
        keys[i] = max(keys[i], keys[position[early.event_id]] + rng.randint(1, 20) + 0.25)
    deliveries = list(zip(keys, ordered, strict=True))
    forced = {e.event_id for e in duplicated}
    for i, event in enumerate(ordered):
        if event.event_id in forced or rng.random() < _DUPLICATE:
            deliveries.append((keys[i] + rng.randint(1, 300) + 0.75, event))
    deliveries.sort(key=lambda pair: pair[0])
    return [event for _, event in deliveries]


# -- one hotel group ------------------------------------------------------------------------


@dataclass(slots=True)
class _Stay:
    room_type: RoomTypePlan
    arrival: date
    departure: date
    rate: Decimal  # per night


@dataclass(slots=True)
class _Booking:
    reservation_id: str
    prop: PropertyPlan
    channel: str
    booked_at: datetime
    stays: list[tuple[datetime | None, _Stay]]  # (modified at, stay); the first is as booked
    adults: int
    children: int
    cancel_at: datetime | None = None
    no_show: bool = False
    room_number: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def stay(self) -> _Stay:
        return self.stays[-1][1]


class _GroupGen:
    def __init__(self, seed: int, group: HotelGroup, now: datetime) -> None:
        self.group, self.tenant, self.now = group, group.tenant, now
        self.rng = random.Random(f"strata-hospitality:{seed}:{group.tenant}")  # noqa: S311
        self.today = now.date()
        self.start = self.today - timedelta(days=PAST_NIGHTS)
        self.end = self.today + timedelta(days=FUTURE_NIGHTS)  # exclusive
        self.nights = [self.start + timedelta(days=d) for d in range(PAST_NIGHTS + FUTURE_NIGHTS)]
        self.events: list[DomainEvent] = []
        self.late_pairs: list[tuple[DomainEvent, DomainEvent]] = []
        self.duplicated: list[DomainEvent] = []
        self.pending = {"dup_created", "dup_payment", "dup_checked_out", "mod_after_cancel"}
        self.pending |= {"two_mods", "checkout_first"}
        # room type id -> night -> rooms; inventory and out-of-order rooms per night
        self.inventory: dict[str, dict[date, int]] = defaultdict(dict)
        self.out_of_order: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
        self.held: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
        self.extra_rooms: dict[str, tuple[date, int]] = {}  # room type -> (from, rooms added)
        self.blocks: list[tuple[RoomTypePlan, date]] = []  # (room type, back in service on)
        self.seq = 0
        self.channel_cw = _cumulative(_CHANNEL_WEIGHTS[group.tenant])
        self.day_cw = _cumulative(
            (1.3 if d.weekday() in _WEEKEND_NIGHTS else 1.0)
            * (1 + 0.25 * math.sin(2 * math.pi * (d.toordinal() % 365) / 365))
            for d in self.nights
        )

    # -- emitting --------------------------------------------------------------------------

    def emit(self, kind: str, at: datetime, payload: dict[str, object]) -> DomainEvent:
        event_type = f"{_PREFIX}.{kind}.v1"
        assert event_type in EVENT_TYPES, event_type
        at = at.replace(microsecond=0)
        assert at < self.now, (event_type, at)
        event = DomainEvent(_uuid(self.rng), event_type, self.tenant, at, payload)
        self.events.append(event)
        return event

    def forced(self, kind: str) -> bool:
        if kind in self.pending:
            self.pending.discard(kind)
            return True
        return False

    def ident(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq:06d}{self.rng.randrange(16**3):03x}"

    def at(self, day: date, lo: float, hi: float) -> datetime:
        """A time on ``day`` between ``lo`` and ``hi`` o'clock (UTC)."""
        minutes = self.rng.randint(round(lo * 60), round(hi * 60) - 1)
        return datetime.combine(day, time(tzinfo=UTC)) + timedelta(minutes=minutes)

    def money(self, value: Decimal) -> Decimal:
        if self.group.currency == "AFN":
            return value.quantize(Decimal(10)).quantize(_CENT)
        return value.quantize(_CENT)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        for prop in self.group.properties:
            self.out_of_order_blocks(prop)
        bookings = [b for prop in self.group.properties for b in self.reservations(prop)]
        self.arrivals(bookings)
        for booking in bookings:
            self.lifecycle(booking)
        for room_type, end in self.blocks:
            if end < self.today:  # the rooms come back to service after a deep clean
                self.maintenance_clean(room_type, end)

    def setup(self) -> None:
        """Properties, room types and their inventory, set up before the window opens."""
        rng, first = self.rng, self.group.properties[0]
        for prop in self.group.properties:
            created = self.at(self.start - timedelta(days=rng.randint(100, 140)), 6, 18)
            self.emit(
                "property.created",
                created,
                {
                    "property_id": prop.property_id,
                    "name": prop.name,
                    "city": prop.city,
                    "country": "AF",
                    "star_rating": prop.star_rating,
                    "timezone": "Asia/Kabul",
                    "opened_on": prop.opened_on.isoformat(),
                    "currency": self.group.currency,
                },
            )
            for room_type in prop.room_types:
                at = created + timedelta(minutes=rng.randint(5, 120))
                self.emit(
                    "room_type.created",
                    at,
                    {
                        "room_type_id": room_type.room_type_id,
                        "property_id": prop.property_id,
                        "code": room_type.code,
                        "name": room_type.name,
                        "max_occupancy": room_type.max_occupancy,
                        "base_rate": str(room_type.base_rate),
                        "currency": self.group.currency,
                    },
                )
                set_at = at + timedelta(days=rng.randint(1, 20))
                wrong = None
                if prop is first and room_type is prop.room_types[0]:
                    # A typo corrected two hours later; the correction arrives first.
                    wrong = self.set_inventory(
                        prop, room_type, self.start, room_type.rooms + 5, set_at
                    )
                    set_at += timedelta(hours=2)
                right = self.set_inventory(prop, room_type, self.start, room_type.rooms, set_at)
                if wrong is not None:
                    self.late_pairs.append((wrong, right))
                for night in self.nights:
                    self.inventory[room_type.room_type_id][night] = room_type.rooms
        # A renovated wing reopens mid-window: more rooms of the first property's first type.
        room_type = first.room_types[0]
        reopen = self.start + timedelta(days=rng.randint(40, 70))
        added = max(1, round(room_type.rooms * 0.2))
        at = self.at(reopen - timedelta(days=rng.randint(10, 30)), 8, 17)
        self.set_inventory(first, room_type, reopen, room_type.rooms + added, at)
        self.extra_rooms[room_type.room_type_id] = (reopen, added)
        for night in self.nights:
            if night >= reopen:
                self.inventory[room_type.room_type_id][night] = room_type.rooms + added

    def set_inventory(
        self, prop: PropertyPlan, room_type: RoomTypePlan, since: date, rooms: int, at: datetime
    ) -> DomainEvent:
        return self.emit(
            "inventory.room_inventory.set",
            at,
            {
                "property_id": prop.property_id,
                "room_type_id": room_type.room_type_id,
                "effective_from": since.isoformat(),
                "rooms": rooms,
            },
        )

    def out_of_order_blocks(self, prop: PropertyPlan) -> None:
        """Rooms taken out of service for maintenance, planned some days ahead."""
        rng = self.rng
        count = rng.randint(1, 2)
        for k in range(count):
            room_type = rng.choice(prop.room_types)
            inventory = room_type.rooms
            rooms = rng.randint(1, max(1, min(3, inventory - 1)))
            start = self.start + timedelta(days=rng.randint(0, len(self.nights) - 3))
            end = min(self.end, start + timedelta(days=rng.randint(2, 9)))
            at = min(
                self.at(start - timedelta(days=rng.randint(1, 20)), 7, 18),
                self.now - timedelta(hours=rng.randint(1, 48)),
            )
            block_id = self.ident("OOO")
            payload: dict[str, object] = {
                "block_id": block_id,
                "property_id": prop.property_id,
                "room_type_id": room_type.room_type_id,
                "from_date": start.isoformat(),
                "to_date": end.isoformat(),
                "rooms": rooms,
                "reason": rng.choice(_BLOCK_REASONS),
            }
            self.emit("inventory.rooms.out_of_order", at, payload)
            if k == 0 and prop is self.group.properties[0]:
                # The works end earlier (or later) than planned: the block is re-sent.
                change = timedelta(days=rng.choice((-1, 1)) * rng.randint(1, 3))
                moved = min(self.end, max(start + timedelta(days=1), end + change))
                end = moved if moved != end else end - timedelta(days=1)  # end >= start + 2
                later = min(at + timedelta(days=rng.randint(1, 5)), self.now - timedelta(hours=1))
                later = max(later, at + timedelta(minutes=1))
                self.emit(
                    "inventory.rooms.out_of_order", later, {**payload, "to_date": end.isoformat()}
                )
            self.blocks.append((room_type, end))
            night = start
            while night < end:
                self.out_of_order[room_type.room_type_id][night] += rooms
                night += timedelta(days=1)

    # -- reservations ----------------------------------------------------------------------

    def available(self, room_type: RoomTypePlan, night: date) -> int:
        rt = room_type.room_type_id
        return self.inventory[rt][night] - self.out_of_order[rt][night] - self.held[rt][night]

    def fits(self, stay: _Stay) -> bool:
        return all(self.available(stay.room_type, n) > 0 for n in _nights(stay))

    def reservations(self, prop: PropertyPlan) -> list[_Booking]:
        """Candidate bookings first come, first served; those that find no room are lost."""
        candidates: list[_Booking] = []
        mean_nights = sum(n * w for n, w in zip(*_NIGHTS, strict=True)) / sum(_NIGHTS[1])
        for room_type in prop.room_types:
            room_nights = sum(self.inventory[room_type.room_type_id].values())
            for _ in range(round(room_nights * _DEMAND / mean_nights)):
                booking = self.candidate(prop, room_type)
                if booking is not None:
                    candidates.append(booking)
        candidates.sort(key=lambda b: b.booked_at)
        kept = []
        for booking in candidates:
            self.fate(booking)
            if booking.cancel_at is None:  # holds a room until it is cancelled
                if not self.fits(booking.stay):
                    continue
                for night in _nights(booking.stay):
                    self.held[booking.stay.room_type.room_type_id][night] += 1
                if len(booking.stays) == 3 and self.forced("two_mods"):
                    booking.extra["reorder_modifications"] = True
            kept.append(booking)
        return kept

    def candidate(self, prop: PropertyPlan, room_type: RoomTypePlan) -> _Booking | None:
        rng = self.rng
        channel = rng.choices(_CHANNELS, cum_weights=self.channel_cw)[0]
        arrival = rng.choices(self.nights, cum_weights=self.day_cw)[0]
        nights = min(rng.choices(*_NIGHTS)[0], (self.end - arrival).days)
        if channel == "walk_in":
            booked_at = self.at(arrival, 14, 22)
        else:
            lead = min(int(rng.expovariate(1 / 21)), 120)
            booked_at = self.at(arrival - timedelta(days=lead), 5, 19)
        if booked_at >= self.now - timedelta(minutes=30):
            return None  # not booked yet
        rate = self.rate(room_type, channel, arrival)
        adults = rng.randint(1, min(2, room_type.max_occupancy))
        children = (
            rng.randint(0, room_type.max_occupancy - adults) if room_type.code == "FAM" else 0
        )
        stay = _Stay(room_type, arrival, arrival + timedelta(days=nights), rate)
        return _Booking(
            self.ident("RSV"), prop, channel, booked_at, [(None, stay)], adults, children
        )

    def rate(self, room_type: RoomTypePlan, channel: str, arrival: date) -> Decimal:
        factor = _CHANNEL_RATE[channel] * self.rng.uniform(0.92, 1.12)
        if arrival.weekday() in _WEEKEND_NIGHTS:
            factor *= 1.1
        return self.money(room_type.base_rate * Decimal(str(round(factor, 4))))

    def fate(self, booking: _Booking) -> None:
        """Cancellation (if it has happened by now) and modifications before it or arrival."""
        rng, channel = self.rng, booking.channel
        arrival_noon = datetime.combine(booking.stay.arrival, time(12, tzinfo=UTC))
        if rng.random() < _CANCEL[channel]:
            span = (arrival_noon - booking.booked_at).total_seconds()
            cancel_at = booking.booked_at + timedelta(seconds=max(600.0, rng.random() * span))
            if cancel_at < min(self.now, arrival_noon):
                booking.cancel_at = cancel_at
        limit = min(arrival_noon, booking.cancel_at or self.now, self.now)
        window = (limit - booking.booked_at).total_seconds()
        if channel == "walk_in" or window < 4 * 3600:
            return
        two = "two_mods" in self.pending and booking.cancel_at is None and window > 86400
        if not two and rng.random() >= _MODIFY:
            return
        count = 2 if two or rng.random() < _SECOND_MODIFICATION else 1
        times = sorted(
            booking.booked_at + timedelta(seconds=rng.uniform(0.1, 0.95) * window)
            for _ in range(count)
        )
        for at in times:
            stay = self.modify(booking, at)
            if stay is not None:
                booking.stays.append((at, stay))

    def modify(self, booking: _Booking, at: datetime) -> _Stay | None:
        """The stay after one change the guest asked for; ``None`` if it cannot apply."""
        rng, old = self.rng, booking.stay
        kind = rng.choice(("dates", "nights", "room_type", "rate"))
        stay = _Stay(old.room_type, old.arrival, old.departure, old.rate)
        if kind == "dates":
            shift = timedelta(days=rng.choice((-2, -1, 1, 2, 3)))
            stay.arrival, stay.departure = old.arrival + shift, old.departure + shift
        elif kind == "nights":
            stay.departure = max(
                old.arrival + timedelta(days=1),
                old.departure + timedelta(days=rng.choice((-1, 1, 2))),
            )
        elif kind == "room_type" and len(booking.prop.room_types) > 1:
            others = [rt for rt in booking.prop.room_types if rt is not old.room_type]
            stay.room_type = rng.choice(others)
            stay.rate = self.money(old.rate * stay.room_type.base_rate / old.room_type.base_rate)
        else:
            stay.rate = self.money(old.rate * Decimal(str(round(rng.uniform(0.9, 1.1), 3))))
        arrival_noon = datetime.combine(stay.arrival, time(12, tzinfo=UTC))
        if stay.arrival < self.start or stay.departure > self.end or arrival_noon <= at:
            return None
        if stay == old:
            stay.rate = self.money(old.rate + Decimal(5))
        return stay

    def arrivals(self, bookings: list[_Booking]) -> None:
        """Who of the guests due before today did not show up, and the others' rooms
        (assigned greedily by arrival)."""
        arriving = [b for b in bookings if b.cancel_at is None and b.stay.arrival < self.today]
        for booking in arriving:
            booking.no_show = self.rng.random() < _NO_SHOW[booking.channel]
        free_from: dict[str, dict[int, date]] = {}
        for booking in sorted(arriving, key=lambda b: (b.stay.arrival, b.reservation_id)):
            if booking.no_show:
                continue
            room_type = booking.stay.room_type
            rooms = free_from.setdefault(room_type.room_type_id, {})
            if not rooms:
                rooms.update((room_type.first_room + k, self.start) for k in range(room_type.rooms))
                reopen, added = self.extra_rooms.get(room_type.room_type_id, (self.start, 0))
                last = room_type.first_room + room_type.rooms
                rooms.update((last + k, reopen) for k in range(added))
            number = min(rooms, key=lambda n: (rooms[n] > booking.stay.arrival, n))
            rooms[number] = booking.stay.departure
            booking.room_number = str(number)

    def lifecycle(self, booking: _Booking) -> None:
        """The booking's events: created, modifications, then how it ended (so far)."""
        rng, prop, stay0 = self.rng, booking.prop, booking.stays[0][1]
        created = self.emit(
            "reservation.created",
            booking.booked_at,
            {
                "reservation_id": booking.reservation_id,
                "property_id": prop.property_id,
                "room_type_id": stay0.room_type.room_type_id,
                "arrival_date": stay0.arrival.isoformat(),
                "departure_date": stay0.departure.isoformat(),
                "adults": booking.adults,
                "children": booking.children,
                "channel": booking.channel,
                "rate_plan": _rate_plan(booking.channel),
                "nightly_rate": str(stay0.rate),
                "currency": self.group.currency,
            },
        )
        if self.forced("dup_created"):
            self.duplicated.append(created)
        modified = [self.modified(booking, at, stay) for at, stay in booking.stays[1:] if at]
        if booking.extra.get("reorder_modifications"):
            self.late_pairs.append((modified[0], modified[1]))  # the first arrives last
        deposit = self.deposit(booking)
        if booking.cancel_at is not None:
            self.cancelled(booking, deposit)
        elif booking.no_show:
            self.emit_status(booking, "no_show", self.at(booking.stay.arrival, 21, 22.5))
            if deposit is None:
                fee_at = self.events[-1].occurred_at + timedelta(minutes=rng.randint(5, 60))
                self.capture(booking, booking.stay.rate, "no_show_fee", "card", fee_at)
        elif booking.room_number is not None:
            self.stay_events(booking, deposit)

    def modified(
        self, booking: _Booking, at: datetime, stay: _Stay, reason: str = ""
    ) -> DomainEvent:
        return self.emit(
            "reservation.modified",
            at,
            {
                "reservation_id": booking.reservation_id,
                "property_id": booking.prop.property_id,
                "room_type_id": stay.room_type.room_type_id,
                "arrival_date": stay.arrival.isoformat(),
                "departure_date": stay.departure.isoformat(),
                "adults": booking.adults,
                "children": booking.children,
                "nightly_rate": str(stay.rate),
                "currency": self.group.currency,
                "change_reason": reason or "guest_request",
            },
        )

    def emit_status(
        self, booking: _Booking, kind: str, at: datetime, **extra: object
    ) -> DomainEvent:
        payload = {
            "reservation_id": booking.reservation_id,
            "property_id": booking.prop.property_id,
        }
        return self.emit(f"reservation.{kind}", at, {**payload, **extra})

    def cancelled(self, booking: _Booking, deposit: tuple[str, Decimal] | None) -> None:
        rng, cancel_at = self.rng, booking.cancel_at
        assert cancel_at is not None
        by = "channel" if booking.channel in ("booking_com", "expedia", "gds") else "guest"
        reason = rng.choice(_CANCEL_REASONS)
        self.emit_status(booking, "cancelled", cancel_at, reason=reason, cancelled_by=by)
        arrival_noon = datetime.combine(booking.stay.arrival, time(12, tzinfo=UTC))
        if deposit is not None and arrival_noon - cancel_at >= _REFUND_NOTICE:
            at = cancel_at + min(timedelta(minutes=rng.randint(1, 30)), (self.now - cancel_at) / 2)
            payment_id, amount = deposit
            self.emit(
                "billing.payment.refunded",
                at,
                {
                    "refund_id": self.ident("RFD"),
                    "payment_id": payment_id,
                    "reservation_id": booking.reservation_id,
                    "property_id": booking.prop.property_id,
                    "amount": str(amount),
                    "currency": self.group.currency,
                    "reason": "cancelled_in_time",
                    "business_date": at.date().isoformat(),
                },
            )
        # A channel manager races the cancellation with a change: it must be ignored.
        late = cancel_at + timedelta(hours=rng.randint(1, 48))
        forced = "mod_after_cancel" in self.pending and late < self.now
        if late < self.now and (forced or rng.random() < _MODIFY_AFTER_CANCEL):
            self.pending.discard("mod_after_cancel")
            old = booking.stay
            shift = timedelta(days=rng.randint(1, 3))
            stay = _Stay(old.room_type, old.arrival + shift, old.departure + shift * 2, old.rate)
            stay.rate = self.money(old.rate * Decimal("1.1"))
            self.modified(booking, late, stay, "channel_sync")

    def deposit(self, booking: _Booking) -> tuple[str, Decimal] | None:
        if self.rng.random() >= _DEPOSIT[booking.channel]:
            return None
        at = booking.booked_at + timedelta(minutes=self.rng.randint(1, 5))
        amount = booking.stays[0][1].rate
        method = _DEPOSIT_METHOD[booking.channel]
        return self.capture(booking, amount, "deposit", method, at), amount

    def capture(
        self, booking: _Booking, amount: Decimal, purpose: str, method: str, at: datetime
    ) -> str:
        payment_id = self.ident("PAY")
        event = self.emit(
            "billing.payment.captured",
            at,
            {
                "payment_id": payment_id,
                "reservation_id": booking.reservation_id,
                "property_id": booking.prop.property_id,
                "amount": str(amount),
                "currency": self.group.currency,
                "method": method,
                "purpose": purpose,
                "business_date": at.date().isoformat(),
            },
        )
        if self.forced("dup_payment"):
            self.duplicated.append(event)
        return payment_id

    def stay_events(self, booking: _Booking, deposit: tuple[str, Decimal] | None) -> None:
        """Check-in, stayover cleaning, check-out, departure cleaning and the final bill."""
        rng, stay, room = self.rng, booking.stay, booking.room_number
        last_change = booking.stays[-1][0] or booking.booked_at
        check_in_at = max(self.at(stay.arrival, 12, 20), last_change + timedelta(minutes=20))
        checked_in = self.emit_status(booking, "checked_in", check_in_at, room_number=room)
        night = stay.arrival + timedelta(days=1)
        while night < min(stay.departure, self.today):
            if rng.random() < _STAYOVER_SERVICE:
                self.task(booking.prop, stay.room_type, room, "stayover", night, booking)
            night += timedelta(days=1)
        if stay.departure >= self.today:
            return  # in house
        check_out_at = self.at(stay.departure, 5, 10)
        checked_out = self.emit_status(booking, "checked_out", check_out_at, room_number=room)
        if self.forced("dup_checked_out"):
            self.duplicated.append(checked_out)
        if self.forced("checkout_first"):
            self.late_pairs.append((checked_in, checked_out))
        total = stay.rate * (stay.departure - stay.arrival).days
        balance = total - (deposit[1] if deposit else Decimal(0))
        if balance > 0:
            method = (
                "bank_transfer" if booking.channel == "corporate" else rng.choice(("card", "cash"))
            )
            at = check_out_at + timedelta(minutes=rng.randint(1, 10))
            self.capture(booking, balance, "balance", method, at)
        self.task(booking.prop, stay.room_type, room, "departure_clean", stay.departure, booking)

    def task(
        self,
        prop: PropertyPlan,
        room_type: RoomTypePlan,
        room: str | None,
        kind: str,
        day: date,
        booking: _Booking | None,
    ) -> None:
        rng = self.rng
        minutes = {"stayover": (10, 25), "departure_clean": (25, 55)}.get(kind, (60, 120))
        duration = rng.randint(*minutes)
        done = self.at(day, 11, 16)
        self.emit(
            "housekeeping.task.completed",
            done,
            {
                "task_id": self.ident("HK"),
                "property_id": prop.property_id,
                "room_type_id": room_type.room_type_id,
                "room_number": room,
                "task_type": kind,
                "business_date": day.isoformat(),
                "duration_minutes": duration,
                "attendant_id": f"{prop.property_id}-hka-{rng.randint(1, 8):02d}",
                "reservation_id": None if booking is None else booking.reservation_id,
            },
        )

    def maintenance_clean(self, room_type: RoomTypePlan, day: date) -> None:
        prop = next(p for p in self.group.properties if room_type in p.room_types)
        room = str(room_type.first_room + self.rng.randrange(room_type.rooms))
        self.task(prop, room_type, room, "maintenance_clean", day, None)


def _nights(stay: _Stay) -> Iterable[date]:
    night = stay.arrival
    while night < stay.departure:
        yield night
        night += timedelta(days=1)


def _rate_plan(channel: str) -> str:
    if channel == "corporate":
        return "CORP"
    return "OTA" if channel in ("booking_com", "expedia") else "BAR"


def _cumulative(weights: Iterable[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _check_scale(scale: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"demo scale must be a positive number, got {scale!r}")


# -- landing --------------------------------------------------------------------------------


def land_events(
    lake: str | LakeStorage,
    journal_dir: str | os.PathLike[str] | None,
    events: Sequence[DomainEvent],
    progress: Callable[[int], None] | None = None,
    *,
    config: IngestConfig | None = None,
) -> DemoSummary:
    """Land ``events`` in delivery order into ``pms.events``, one SDK client per service."""
    storage = lake if isinstance(lake, LakeStorage) else open_lake(lake)
    clients: dict[str, IngestClient] = {}
    sent: dict[str, int] = defaultdict(int)
    with ExitStack() as stack:  # closing a client flushes it; all close even if one fails
        for count, event in enumerate(events, start=1):
            service = event.source_service
            client = clients.get(service)
            if client is None:
                client = IngestClient(
                    storage,
                    namespace=NAMESPACE,
                    source_service=service,
                    journal_dir=journal_dir,
                    config=config,
                )
                clients[service] = stack.enter_context(client)
            client.ingest(TABLE, event.tenant_id, event.envelope())
            sent[service] += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
    if progress is not None:
        progress(len(events))
    sources = tuple(
        SourceSummary(NAMESPACE, service, sent[service], s.quarantined, s.files_written)
        for service, s in sorted((service, c.stats()) for service, c in clients.items())
    )
    mine = [t for t in inventory(storage, NAMESPACE, TABLE).tables if t.table == TABLE]
    return DemoSummary(
        records=len(events),
        sources=sources,
        tables=tuple(t for t in mine if not t.quarantine),
        quarantine_tables=tuple(t for t in mine if t.quarantine),
    )


def land_hospitality(
    lake: str | LakeStorage,
    journal_dir: str | os.PathLike[str] | None,
    seed: int = 7,
    scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
    *,
    now: datetime | None = None,
    config: IngestConfig | None = None,
) -> DemoSummary:
    """Generate the hospitality demo and land it; counts are read back from the lake."""
    events = generate(seed, scale, now=now)
    return land_events(lake, journal_dir, events, progress, config=config)
