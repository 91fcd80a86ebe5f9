"""Metrics: YAML definitions, their SQL allowlist, and the compiler, run in a real DuckDB."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.semantic.guard import guard_query
from strata.semantic.metric_compile import (
    Filter,
    MetricRequest,
    MetricRequestError,
    compile_metric,
    compile_metric_sql,
    periods_between,
    shift,
    truncate,
)
from strata.semantic.metrics import (
    GRAINS,
    Measure,
    MetricDefinition,
    MetricDefinitionError,
    MetricLoadError,
    MetricSqlError,
    load_metrics,
    parse_expression,
    validate_metrics,
)
from strata.transform.config import ProjectError

D = dt.date
COLUMNS = (
    "stay_date",
    "property_id",
    "channel",
    "status",
    "rooms_sold",
    "rooms_available",
    "room_revenue",
    "guest_id",
)
EXPLORES: Mapping[str, tuple[str, ...]] = {"room_nights": COLUMNS, "bookings": ("booked_at",)}
# stay_date, property_id, channel, status, rooms_sold, rooms_available, room_revenue, guest_id
ROWS = [
    (D(2023, 12, 31), 1, "web", "ok", 7, 70, 700.0, "g1"),  # a Sunday: ISO week of Dec 25
    (D(2024, 1, 1), 1, "web", "ok", 1, 2, 100.0, "g1"),  # Monday
    (D(2024, 1, 2), 1, "phone", "ok", 9, 100, 900.0, "g2"),
    (D(2024, 1, 8), 2, "web", "ok", 5, 10, 500.0, "g1"),
    (D(2024, 1, 31), 2, None, "ok", 2, 4, 200.0, "g3"),  # Wednesday, week of Jan 29
    (D(2024, 2, 15), 1, "web", "cancelled", 50, 50, 5000.0, "g4"),
    (D(2024, 2, 20), 1, "phone", "ok", 3, 6, 300.0, "g2"),  # week of Feb 19
    (D(2024, 4, 10), 2, "web", "ok", 4, 8, 400.0, "g5"),  # week of Apr 8
]
NOT_CANCELLED = ("status <> 'cancelled'",)
DIMENSIONS = ("channel", "property_id")


def simple(
    key: str = "rooms_sold",
    agg: str = "sum",
    expr: str | None = "rooms_sold",
    **overrides: object,
) -> MetricDefinition:
    fields: dict[str, object] = {
        "explore": "room_nights",
        "time_dimension": "stay_date",
        "measure": Measure(agg, expr),  # type: ignore[arg-type]
        "dimensions": DIMENSIONS,
        "filters": NOT_CANCELLED,
        **overrides,
    }
    return MetricDefinition(key, 1, "simple", **fields)  # type: ignore[arg-type]


OCCUPANCY = MetricDefinition(
    "occupancy",
    3,
    "ratio",
    explore="room_nights",
    time_dimension="stay_date",
    numerator=Measure("sum", "rooms_sold"),
    denominator=Measure("sum", "rooms_available"),
    dimensions=DIMENSIONS,
    filters=NOT_CANCELLED,
)
REVENUE = simple("room_revenue", expr="room_revenue")
AVAILABLE = simple("rooms_available", expr="rooms_available")
REVPAR = MetricDefinition(
    "revpar",
    1,
    "derived",
    expression="room_revenue / nullif(rooms_available, 0)",
    uses=("room_revenue", "rooms_available"),
    dimensions=DIMENSIONS,
)
REGISTRY = {m.key: m for m in (OCCUPANCY, REVENUE, AVAILABLE, REVPAR)}


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA explore")
    connection.execute(
        "CREATE TABLE explore.room_nights (stay_date DATE, property_id INTEGER, channel VARCHAR,"
        " status VARCHAR, rooms_sold INTEGER, rooms_available INTEGER, room_revenue DOUBLE,"
        " guest_id VARCHAR)"
    )
    connection.executemany(
        "INSERT INTO explore.room_nights VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [list(r) for r in ROWS]
    )
    yield connection
    connection.close()


def run(
    db: duckdb.DuckDBPyConnection,
    metric: MetricDefinition,
    start: dt.date,
    end: dt.date,
    grain: str,
    group_by: tuple[str, ...] = (),
    filters: tuple[Filter, ...] = (),
    registry: Mapping[str, MetricDefinition] = REGISTRY,
) -> list[tuple[object, ...]]:
    request = MetricRequest(start, end, grain, group_by, filters)  # type: ignore[arg-type]
    sql = compile_metric_sql(metric, request, registry)
    # The compiled query also passes the tenant SQL guard, over the explore alone.
    guard_query(sql, ["explore.room_nights"], max_rows=100_000)
    return [tuple(row) for row in db.execute(sql).fetchall()]


# -- simple and ratio ------------------------------------------------------------------------


def test_simple_sum_by_month_applies_the_default_filter(db: duckdb.DuckDBPyConnection) -> None:
    assert run(db, REVENUE, D(2024, 1, 1), D(2024, 4, 30), "month") == [
        (D(2024, 1, 1), 1700.0),
        (D(2024, 2, 1), 300.0),  # the cancelled 5000 is filtered out by default
        (D(2024, 4, 1), 400.0),  # March has no rows: no period row
    ]
    unfiltered = simple("room_revenue", expr="room_revenue", filters=())
    assert run(db, unfiltered, D(2024, 2, 1), D(2024, 2, 29), "month") == [(D(2024, 2, 1), 5300.0)]


def test_ratio_is_a_ratio_of_sums_not_an_average_of_ratios(
    db: duckdb.DuckDBPyConnection,
) -> None:
    [(period, value)] = run(db, OCCUPANCY, D(2024, 1, 1), D(2024, 1, 31), "month")
    assert period == D(2024, 1, 1)
    assert value == (1 + 9 + 5 + 2) / (2 + 100 + 10 + 4)
    january = [r for r in ROWS if r[0].year == 2024 and r[0].month == 1]
    per_row = sum(r[4] / r[5] for r in january) / len(january)
    assert abs(value - per_row) > 0.2  # 0.147 against 0.41: the two really differ here
    per_day = run(db, OCCUPANCY, D(2024, 1, 1), D(2024, 1, 31), "day")
    average_of_days = sum(v for _, v in per_day) / len(per_day)  # type: ignore[misc]
    assert abs(value - average_of_days) > 0.2


def test_a_ratio_with_a_zero_denominator_is_null(db: duckdb.DuckDBPyConnection) -> None:
    metric = MetricDefinition(
        "zero",
        1,
        "ratio",
        explore="room_nights",
        time_dimension="stay_date",
        numerator=Measure("sum", "rooms_sold"),
        denominator=Measure("sum", "rooms_sold * 0"),
    )
    assert run(db, metric, D(2024, 1, 1), D(2024, 1, 1), "day") == [(D(2024, 1, 1), None)]


@pytest.mark.parametrize(
    ("grain", "start", "expected"),
    [
        (
            "day",
            D(2024, 1, 1),
            [(D(2024, 1, 1), 1), (D(2024, 1, 2), 9), (D(2024, 1, 8), 5), (D(2024, 1, 31), 2)],
        ),
        (
            "week",  # ISO weeks, starting on Monday
            D(2023, 12, 31),
            [(D(2023, 12, 25), 7), (D(2024, 1, 1), 10), (D(2024, 1, 8), 5), (D(2024, 1, 29), 2)],
        ),
        ("month", D(2023, 12, 1), [(D(2023, 12, 1), 7), (D(2024, 1, 1), 17)]),
        ("quarter", D(2023, 12, 1), [(D(2023, 10, 1), 7), (D(2024, 1, 1), 17)]),
        ("year", D(2023, 1, 1), [(D(2023, 1, 1), 7), (D(2024, 1, 1), 17)]),
    ],
)
def test_grains(
    db: duckdb.DuckDBPyConnection, grain: str, start: dt.date, expected: list[object]
) -> None:
    assert run(db, simple(), start, D(2024, 1, 31), grain) == expected


def test_quarter_and_year_over_the_whole_data(db: duckdb.DuckDBPyConnection) -> None:
    assert run(db, simple(), D(2024, 1, 1), D(2024, 12, 31), "quarter") == [
        (D(2024, 1, 1), 1 + 9 + 5 + 2 + 3),
        (D(2024, 4, 1), 4),
    ]
    assert run(db, simple(), D(2020, 1, 1), D(2024, 12, 31), "year") == [
        (D(2023, 1, 1), 7),
        (D(2024, 1, 1), 24),
    ]


def test_the_range_is_inclusive_and_cuts_partial_periods(db: duckdb.DuckDBPyConnection) -> None:
    # Jan 2 .. Jan 31 leaves out Jan 1 but keeps Jan 31 (the end is inclusive).
    assert run(db, simple(), D(2024, 1, 2), D(2024, 1, 31), "month") == [(D(2024, 1, 1), 16)]
    assert run(db, simple(), D(2024, 1, 2), D(2024, 1, 30), "month") == [(D(2024, 1, 1), 14)]


def test_timestamp_time_dimensions_include_the_whole_end_day() -> None:
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA explore")
    connection.execute(
        "CREATE TABLE explore.room_nights AS SELECT * FROM (VALUES"
        " (TIMESTAMP '2024-01-31 23:59:59', 1), (TIMESTAMP '2024-02-01 00:00:00', 10))"
        " AS t(stay_date, rooms_sold)"
    )
    metric = simple(dimensions=(), filters=())
    request = MetricRequest(D(2024, 1, 1), D(2024, 1, 31), "month")
    sql = compile_metric_sql(metric, request, {})
    assert connection.execute(sql).fetchall() == [(D(2024, 1, 1), 1)]


def test_group_by_orders_by_period_then_dimensions_nulls_last(
    db: duckdb.DuckDBPyConnection,
) -> None:
    assert run(db, simple(), D(2024, 1, 1), D(2024, 2, 29), "month", ("channel",)) == [
        (D(2024, 1, 1), "phone", 9),
        (D(2024, 1, 1), "web", 6),
        (D(2024, 1, 1), None, 2),
        (D(2024, 2, 1), "phone", 3),
    ]
    assert run(
        db, OCCUPANCY, D(2024, 1, 1), D(2024, 1, 31), "month", ("property_id", "channel")
    ) == [
        (D(2024, 1, 1), 1, "phone", 9 / 100),
        (D(2024, 1, 1), 1, "web", 1 / 2),
        (D(2024, 1, 1), 2, "web", 5 / 10),
        (D(2024, 1, 1), 2, None, 2 / 4),
    ]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Filter("channel", "eq", ("web",)), 1 + 5),
        (Filter("channel", "ne", ("web",)), 9 + 2),  # keeps the NULL channel
        (Filter("channel", "in", ("web", "phone")), 1 + 9 + 5),
        (Filter("channel", "not_in", ("phone",)), 1 + 5 + 2),  # keeps the NULL channel
        (Filter("channel", "eq", (None,)), 2),
        (Filter("channel", "ne", (None,)), 1 + 9 + 5),
        (Filter("property_id", "gt", (1,)), 5 + 2),
        (Filter("property_id", "gte", (2,)), 5 + 2),
        (Filter("property_id", "lt", (2,)), 1 + 9),
        (Filter("property_id", "lte", (1,)), 1 + 9),
        (Filter("channel", "eq", ("web' OR 1=1 --",)), None),  # a literal, never SQL
    ],
)
def test_request_filters(
    db: duckdb.DuckDBPyConnection, condition: Filter, expected: int | None
) -> None:
    rows = run(db, simple(), D(2024, 1, 1), D(2024, 1, 31), "month", (), (condition,))
    assert rows == ([] if expected is None else [(D(2024, 1, 1), expected)])


def test_request_filters_and_default_filters_combine(db: duckdb.DuckDBPyConnection) -> None:
    metric = simple(filters=("status <> 'cancelled'", "rooms_available < 60"))
    conditions = (Filter("channel", "eq", ("web",)), Filter("property_id", "eq", (1,)))
    rows = run(db, metric, D(2023, 1, 1), D(2024, 12, 31), "year", (), conditions)
    assert rows == [(D(2024, 1, 1), 1)]  # Dec 31 has 70 rooms; Feb 15 is cancelled


@pytest.mark.parametrize(
    ("agg", "expr", "expected"),
    [
        ("count", None, 4),
        ("count", "channel", 3),
        ("count_distinct", "guest_id", 3),
        ("avg", "rooms_sold", 17 / 4),
        ("min", "rooms_sold", 1),
        ("max", "room_revenue * 2", 1800.0),
        ("sum", "CASE WHEN channel = 'web' THEN rooms_sold ELSE 0 END", 6),
        ("sum", "coalesce(length(channel), 0)", 3 + 5 + 3),
    ],
)
def test_aggregates(
    db: duckdb.DuckDBPyConnection, agg: str, expr: str | None, expected: object
) -> None:
    metric = simple(agg=agg, expr=expr)
    assert run(db, metric, D(2024, 1, 1), D(2024, 1, 31), "month") == [(D(2024, 1, 1), expected)]


# -- derived ---------------------------------------------------------------------------------


def test_derived_combines_metrics_over_the_same_period_and_groups(
    db: duckdb.DuckDBPyConnection,
) -> None:
    assert run(db, REVPAR, D(2024, 1, 1), D(2024, 2, 29), "month") == [
        (D(2024, 1, 1), 1700 / 116),
        (D(2024, 2, 1), 300 / 6),
    ]
    assert run(db, REVPAR, D(2024, 1, 1), D(2024, 1, 31), "month", ("channel",)) == [
        (D(2024, 1, 1), "phone", 900 / 100),
        (D(2024, 1, 1), "web", 600 / 12),
        (D(2024, 1, 1), None, 200 / 4),  # NULL groups join NULL groups
    ]


def test_derived_keeps_keys_only_one_used_metric_has(db: duckdb.DuckDBPyConnection) -> None:
    cancelled = simple("cancelled", expr="rooms_sold", filters=("status = 'cancelled'",))
    kept = simple("kept")
    total = MetricDefinition(
        "total",
        1,
        "derived",
        expression="coalesce(kept, 0) + coalesce(cancelled, 0)",
        uses=("kept", "cancelled"),
        dimensions=DIMENSIONS,
    )
    registry = {m.key: m for m in (cancelled, kept, total)}
    rows = run(db, total, D(2024, 2, 1), D(2024, 4, 30), "month", ("channel",), (), registry)
    assert rows == [
        (D(2024, 2, 1), "phone", 3),
        (D(2024, 2, 1), "web", 50),  # only in `cancelled`: the full outer join keeps it
        (D(2024, 4, 1), "web", 4),
    ]


def test_derived_of_derived_and_of_a_cumulative(db: duckdb.DuckDBPyConnection) -> None:
    double = MetricDefinition(
        "double_revpar", 1, "derived", expression="revpar * 2", uses=("revpar",)
    )
    running = MetricDefinition(
        "running",
        1,
        "cumulative",
        explore="room_nights",
        time_dimension="stay_date",
        measure=Measure("sum", "rooms_sold"),
        filters=NOT_CANCELLED,
    )
    share = MetricDefinition(
        "share", 1, "derived", expression="rooms_sold / running", uses=("rooms_sold", "running")
    )
    registry = {**REGISTRY, "double_revpar": double, "running": running, "share": share}
    registry["rooms_sold"] = simple()
    assert run(db, double, D(2024, 1, 1), D(2024, 1, 31), "month", registry=registry) == [
        (D(2024, 1, 1), 2 * 1700 / 116)
    ]
    assert run(db, share, D(2024, 1, 1), D(2024, 3, 31), "month", registry=registry) == [
        (D(2024, 1, 1), 17 / 24),
        (D(2024, 2, 1), 3 / 27),
        (D(2024, 3, 1), None),  # running has March (no rows: +0); rooms_sold does not
    ]


def test_derived_needs_its_uses_in_the_registry_and_the_request_to_fit_them() -> None:
    request = MetricRequest(D(2024, 1, 1), D(2024, 1, 31), "month", ("channel",))
    with pytest.raises(MetricDefinitionError, match="uses 'rooms_available', which the registry"):
        compile_metric(REVPAR, request, {"room_revenue": REVENUE})
    narrow = simple("rooms_available", expr="rooms_available", dimensions=())
    registry = {**REGISTRY, "rooms_available": narrow}
    with pytest.raises(
        MetricRequestError,
        match=r"metric 'rooms_available' \(used by 'revpar'\) has no dimension 'channel'",
    ):
        compile_metric(REVPAR, request, registry)
    loop = MetricDefinition("loop", 1, "derived", expression="revpar", uses=("revpar",))
    looped = MetricDefinition("revpar", 1, "derived", expression="loop", uses=("loop",))
    with pytest.raises(MetricDefinitionError, match="cycle: revpar -> loop"):
        compile_metric(
            looped,
            MetricRequest(D(2024, 1, 1), D(2024, 1, 31), "month"),
            {
                "loop": loop,
                "revpar": looped,
            },
        )


# -- cumulative ------------------------------------------------------------------------------


def cumulative(window: int | None = None, agg: str = "sum") -> MetricDefinition:
    return MetricDefinition(
        "running_rooms",
        1,
        "cumulative",
        explore="room_nights",
        time_dimension="stay_date",
        measure=Measure(agg, "rooms_sold"),  # type: ignore[arg-type]
        window=window,
        dimensions=DIMENSIONS,
        filters=NOT_CANCELLED,
    )


def test_cumulative_counts_history_before_start_and_fills_empty_periods(
    db: duckdb.DuckDBPyConnection,
) -> None:
    assert run(db, cumulative(), D(2024, 2, 1), D(2024, 5, 31), "month") == [
        (D(2024, 2, 1), 7 + 17 + 3),  # December and January count into February's total
        (D(2024, 3, 1), 27),  # no rows in March: the total carries on
        (D(2024, 4, 1), 31),
        (D(2024, 5, 1), 31),
    ]


def test_cumulative_with_a_window_of_periods(db: duckdb.DuckDBPyConnection) -> None:
    assert run(db, cumulative(window=2), D(2024, 1, 1), D(2024, 5, 31), "month") == [
        (D(2024, 1, 1), 7 + 17),  # the window reaches back into December, before start
        (D(2024, 2, 1), 17 + 3),
        (D(2024, 3, 1), 3),
        (D(2024, 4, 1), 4),
        (D(2024, 5, 1), 4),
    ]
    assert run(db, cumulative(window=7), D(2024, 1, 5), D(2024, 1, 10), "day") == [
        (D(2024, 1, 5), 7 + 1 + 9),  # Dec 30 .. Jan 5
        (D(2024, 1, 6), 7 + 1 + 9),
        (D(2024, 1, 7), 1 + 9),  # Jan 1 .. Jan 7: Dec 31 has left the window
        (D(2024, 1, 8), 9 + 5),
        (D(2024, 1, 9), 5),
        (D(2024, 1, 10), 5),
    ]
    assert run(db, cumulative(window=1, agg="count"), D(2024, 1, 1), D(2024, 1, 14), "week") == [
        (D(2024, 1, 1), 2),
        (D(2024, 1, 8), 1),
    ]


def test_cumulative_by_group_fills_every_group_and_stops_at_end(
    db: duckdb.DuckDBPyConnection,
) -> None:
    rows = run(db, cumulative(), D(2024, 2, 1), D(2024, 4, 9), "month", ("channel",))
    assert rows == [
        (D(2024, 2, 1), "phone", 12),
        (D(2024, 2, 1), "web", 13),
        (D(2024, 2, 1), None, 2),
        (D(2024, 3, 1), "phone", 12),
        (D(2024, 3, 1), "web", 13),
        (D(2024, 3, 1), None, 2),
        (D(2024, 4, 1), "phone", 12),
        (D(2024, 4, 1), "web", 13),  # Apr 10 is after the end (Apr 9): not counted
        (D(2024, 4, 1), None, 2),
    ]
    narrowed = (Filter("channel", "eq", ("phone",)),)
    rows = run(db, cumulative(), D(2024, 3, 1), D(2024, 3, 31), "quarter", (), narrowed)
    assert rows == [(D(2024, 1, 1), 12)]


def test_cumulative_without_rows_is_empty_and_long_spans_are_refused(
    db: duckdb.DuckDBPyConnection,
) -> None:
    assert run(db, cumulative(window=3), D(2030, 1, 1), D(2030, 1, 31), "day") == []
    request = MetricRequest(D(1990, 1, 1), D(2024, 1, 1), "day")
    with pytest.raises(MetricRequestError, match="would span 12419 day periods"):
        compile_metric(cumulative(), request, {})
    big = run(db, cumulative(), D(2000, 1, 1), D(2024, 1, 1), "day")  # 8767 periods: allowed
    assert len(big) == 8767
    assert big[-1] == (D(2024, 1, 1), 8)


def test_cumulative_refuses_aggregates_that_do_not_add_up() -> None:
    with pytest.raises(MetricDefinitionError, match="agg 'avg': a cumulative metric adds up"):
        cumulative(agg="avg")


# -- requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_args", "message"),
    [
        (("day", (), ()), "has no grain 'day' \\(grains: month, year\\)"),
        (("month", ("guest_id",), ()), "has no dimension 'guest_id' \\(dimensions: channel\\)"),
        (("month", (), (Filter("status", "eq", ("ok",)),)), "has no dimension 'status'"),
    ],
)
def test_requests_must_fit_the_metric(request_args: tuple[object, ...], message: str) -> None:
    metric = simple(grains=("month", "year"), dimensions=("channel",))
    grain, group_by, filters = request_args
    request = MetricRequest(D(2024, 1, 1), D(2024, 1, 31), grain, group_by, filters)  # type: ignore[arg-type]
    with pytest.raises(MetricRequestError, match=message):
        compile_metric(metric, request, {})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MetricRequest(D(2024, 2, 1), D(2024, 1, 1), "day"), "is after end"),
        (lambda: MetricRequest(dt.datetime(2024, 1, 1), D(2024, 1, 1), "day"), "must be a date"),
        (lambda: MetricRequest(D(2024, 1, 1), D(2024, 1, 1), "hour"), "grain 'hour'"),
        (lambda: MetricRequest(D(2024, 1, 1), D(2024, 1, 1), "day", "channel"), "must be a list"),
        (lambda: MetricRequest(D(2024, 1, 1), D(2024, 1, 1), "day", ("a", "a")), "twice"),
        (lambda: MetricRequest(D(2024, 1, 1), D(2024, 1, 1), "day", ("a b",)), "not a dimension"),
        (lambda: Filter("channel", "like", ("w%",)), "op 'like' is not one of"),
        (lambda: Filter("channel", "eq", ("a", "b")), "takes one value, not 2"),
        (lambda: Filter("channel", "in", ()), "takes 1..1000 values"),
        (lambda: Filter("channel", "in", ("a", None)), "null only goes with eq or ne"),
        (lambda: Filter("channel", "gt", (None,)), "null only goes with eq or ne"),
        (lambda: Filter("channel", "eq", ([1],)), "a list is not a filter value"),
        (lambda: Filter("channel", "eq", (float("nan"),)), "nan is not a filter value"),
        (lambda: Filter("channel", "eq", "web"), "must be a list"),
        (lambda: Filter("1=1; --", "eq", ("x",)), "is not a name"),
    ],
)
def test_malformed_requests_are_refused(build: object, message: str) -> None:
    with pytest.raises(MetricRequestError, match=message):
        build()  # type: ignore[operator]


def test_filter_values_become_typed_literals(db: duckdb.DuckDBPyConnection) -> None:
    metric = simple(dimensions=("stay_date", "room_revenue"))
    conditions = (
        Filter("stay_date", "gte", (D(2024, 1, 2),)),
        Filter("room_revenue", "lt", (Decimal("900.5"),)),
    )
    rows = run(db, metric, D(2024, 1, 1), D(2024, 1, 31), "month", (), conditions)
    assert rows == [(D(2024, 1, 1), 9 + 5 + 2)]
    request = MetricRequest(D(2024, 1, 1), D(2024, 1, 31), "month", (), conditions)
    assert "CAST('2024-01-02' AS DATE)" in compile_metric_sql(metric, request, {})


# -- definitions and their SQL ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("sum(rooms_sold)", "aggregate 'sum' is not allowed"),
        ("(select 1)", "subqueries and statements are not allowed"),
        ("rooms_sold in (select 1)", "subqueries and statements are not allowed"),
        ("exists (select 1)", "subqueries and statements are not allowed"),
        ("t.rooms_sold", "name columns without a table"),
        ("rooms_sold; drop table x", "must be exactly one SQL expression"),
        ("drop table x", "is not allowed"),
        ("read_csv('/etc/passwd')", "function 'read_csv' is not allowed"),
        ("current_date", "is not allowed"),
        ("now()", "function 'now' is not allowed"),
        ("row_number() over ()", "window functions are not allowed"),
        ("rooms_sold + $1", "is not allowed"),
        ("*", "is not allowed"),
        ("[1, 2]", "is not allowed"),
        ("rooms_sold::my_type", "type 'my_type' is not allowed"),
        ("", "is empty"),
        ("rooms_sold +", "does not parse"),
        ("'unclosed", "does not parse"),
    ],
)
def test_sql_outside_the_scalar_allowlist_is_refused(sql: str, message: str) -> None:
    with pytest.raises(MetricSqlError, match=message):
        parse_expression(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "rooms_sold * 2 - 1",
        "coalesce(nullif(channel, ''), 'direct')",
        "CASE WHEN status = 'ok' THEN 1 ELSE 0 END",
        "cast(rooms_sold AS DECIMAL(10, 2)) / 3",
        "upper(channel) LIKE 'W%' AND stay_date >= DATE '2024-01-01'",
        "date_trunc('month', stay_date)",
        "extract(year FROM stay_date) = 2024",
        "stay_date + INTERVAL 1 DAY",
        "channel IS NOT NULL AND channel IN ('web', 'phone')",
        "date_part('dow', stay_date) BETWEEN 1 AND 5",
    ],
)
def test_sql_inside_the_allowlist_parses(sql: str) -> None:
    parse_expression(sql)


def test_definitions_check_their_shape() -> None:
    base = {"explore": "room_nights", "time_dimension": "stay_date"}
    cases: list[tuple[dict[str, object], str]] = [
        ({"type": "simple", **base}, "a simple metric needs 'measure'"),
        (
            {"type": "simple", "measure": Measure("sum", "x"), "window": 3, **base},
            "'window' applies to cumulative metrics only, not simple ones",
        ),
        ({"type": "ratio", "numerator": Measure("sum", "x"), **base}, "needs 'denominator'"),
        ({"type": "derived", "expression": "a"}, "a derived metric needs 'uses'"),
        (
            {"type": "derived", "expression": "a", "uses": ("a",), "explore": "x"},
            "'explore' applies to simple, ratio, cumulative metrics only",
        ),
        ({"type": "simple", "measure": Measure("sum"), **base}, "measure needs an expr"),
        ({"type": "simple", "measure": Measure("median", "x"), **base}, "agg 'median'"),
        ({"type": "simple", "measure": Measure("sum", "x"), "grains": (), **base}, "grains"),
        (
            {"type": "simple", "measure": Measure("sum", "x"), "grains": ("hour",), **base},
            "grain 'hour'",
        ),
        (
            {"type": "simple", "measure": Measure("sum", "x"), "dimensions": ("value",), **base},
            "dimension 'value' is a reserved name",
        ),
        (
            {"type": "simple", "measure": Measure("sum", "sum(x)"), **base},
            "measure.expr: aggregate 'sum' is not allowed",
        ),
        ({"type": "metric"}, "type 'metric' is not one of simple, ratio, derived, cumulative"),
    ]
    for fields, message in cases:
        with pytest.raises(MetricDefinitionError, match=message):
            MetricDefinition("m", 1, **fields)  # type: ignore[arg-type]
    with pytest.raises(MetricDefinitionError, match="version must be a positive"):
        MetricDefinition("m", 0, "simple", measure=Measure("count"), **base)  # type: ignore[arg-type]
    with pytest.raises(MetricDefinitionError, match="cannot use itself"):
        MetricDefinition("m", 1, "derived", expression="m", uses=("m",))


def test_canonical_json_round_trips_and_the_hash_follows_the_content() -> None:
    for metric in (*REGISTRY.values(), cumulative(window=3)):
        again = MetricDefinition.from_dict(metric.to_dict())
        assert again == metric
        assert again.content_hash == metric.content_hash
    assert REVPAR.canonical_json() == (
        '{"dimensions":["channel","property_id"],"expression":"room_revenue / nullif('
        'rooms_available, 0)","grains":["day","week","month","quarter","year"],"key":"revpar",'
        '"type":"derived","uses":["room_revenue","rooms_available"],"version":1}'
    )
    slo = MetricDefinition.from_dict({**OCCUPANCY.to_dict(), "freshness_slo_seconds": 21600})
    assert slo.freshness_slo == dt.timedelta(hours=6)
    assert slo.content_hash != OCCUPANCY.content_hash
    assert simple(description="Rooms.").content_hash != simple().content_hash
    with pytest.raises(MetricDefinitionError, match="unknown field 'colour'"):
        MetricDefinition.from_dict({**OCCUPANCY.to_dict(), "colour": "red"})
    with pytest.raises(MetricDefinitionError, match="metric document"):
        MetricDefinition.from_dict({"key": "x"})


def test_the_compiler_and_definitions_do_not_import_duckdb() -> None:
    code = "import sys, strata.semantic.metric_compile; print('duckdb' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_period_arithmetic_matches_duckdb(db: duckdb.DuckDBPyConnection) -> None:
    for day in (D(2024, 1, 1), D(2023, 12, 31), D(2024, 2, 29), D(2024, 11, 17)):
        for grain in GRAINS:
            [(expected,)] = db.execute(
                f"SELECT CAST(date_trunc('{grain}', ?::DATE) AS DATE)", [day]
            ).fetchall()
            assert truncate(day, grain) == expected
            assert periods_between(expected, shift(expected, grain, 5), grain) == 6
            assert shift(shift(expected, grain, 5), grain, -5) == expected


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 90),
            st.sampled_from(["web", "phone"]),
            st.integers(0, 1000),
            st.integers(0, 1000),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_ratio_is_sum_of_numerators_over_sum_of_denominators(
    rows: list[tuple[int, str, int, int]],
) -> None:
    data = [(D(2024, 1, 1) + dt.timedelta(days=d), c, n, den) for d, c, n, den in rows]
    connection = duckdb.connect()
    try:
        connection.execute("CREATE SCHEMA explore")
        connection.execute(
            "CREATE TABLE explore.room_nights (stay_date DATE, channel VARCHAR,"
            " rooms_sold INTEGER, rooms_available INTEGER)"
        )
        connection.executemany("INSERT INTO explore.room_nights VALUES (?, ?, ?, ?)", data)
        metric = MetricDefinition(
            "occupancy",
            1,
            "ratio",
            explore="room_nights",
            time_dimension="stay_date",
            numerator=Measure("sum", "rooms_sold"),
            denominator=Measure("sum", "rooms_available"),
            dimensions=("channel",),
        )
        request = MetricRequest(D(2024, 1, 1), D(2024, 3, 31), "month", ("channel",))
        got = connection.execute(compile_metric_sql(metric, request, {})).fetchall()
    finally:
        connection.close()
    sums: dict[tuple[dt.date, str], list[int]] = defaultdict(lambda: [0, 0])
    for day, channel, sold, available in data:
        if day <= D(2024, 3, 31):
            totals = sums[(day.replace(day=1), channel)]
            totals[0] += sold
            totals[1] += available
    expected = [
        (month, channel, n / d if d else None) for (month, channel), (n, d) in sorted(sums.items())
    ]
    assert [tuple(r) for r in got] == expected


# -- loading YAML ----------------------------------------------------------------------------

FILES = {
    "occupancy.yml": """\
        key: occupancy
        version: 3
        description: Rooms sold / rooms available.
        owner: revenue-team
        explore: room_nights
        type: ratio
        numerator: {agg: sum, expr: rooms_sold}
        denominator: {agg: sum, expr: rooms_available}
        time_dimension: stay_date
        grains: [day, week, month, quarter, year]
        dimensions: [channel, property_id]
        filters: ["status <> 'cancelled'"]
        freshness_slo: 6h
        """,
    "room_revenue.yml": """\
        key: room_revenue
        version: 1
        type: simple
        explore: room_nights
        time_dimension: stay_date
        measure: {agg: sum, expr: room_revenue}
        dimensions: [channel, property_id]
        filters: ["status <> 'cancelled'"]
        """,
    "rooms_available.yml": """\
        key: rooms_available
        version: 1
        type: simple
        explore: room_nights
        time_dimension: stay_date
        measure: {agg: sum, expr: rooms_available}
        dimensions: [channel, property_id]
        filters: ["status <> 'cancelled'"]
        """,
    "revpar.yml": """\
        key: revpar
        version: 1
        type: derived
        expression: "room_revenue / nullif(rooms_available, 0)"
        uses: [room_revenue, rooms_available]
        dimensions: [channel, property_id]
        """,
    "running_rooms.yml": """\
        key: running_rooms
        version: 1
        type: cumulative
        explore: room_nights
        time_dimension: stay_date
        measure: {agg: sum, expr: rooms_sold}
        window: 3
        dimensions: [channel, property_id]
        filters: ["status <> 'cancelled'"]
        """,
}


def write_metrics(root: Path, files: Mapping[str, str]) -> Path:
    folder = root / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_load_metrics_reads_every_type(tmp_path: Path) -> None:
    metrics = load_metrics(write_metrics(tmp_path, FILES), EXPLORES)
    assert set(metrics) == {
        "occupancy",
        "room_revenue",
        "rooms_available",
        "revpar",
        "running_rooms",
    }
    assert metrics["occupancy"] == MetricDefinition(
        "occupancy",
        3,
        "ratio",
        explore="room_nights",
        time_dimension="stay_date",
        numerator=Measure("sum", "rooms_sold"),
        denominator=Measure("sum", "rooms_available"),
        dimensions=DIMENSIONS,
        filters=NOT_CANCELLED,
        description="Rooms sold / rooms available.",
        owner="revenue-team",
        freshness_slo=dt.timedelta(hours=6),
    )
    assert metrics["revpar"] == REVPAR
    assert metrics["room_revenue"] == REVENUE
    assert metrics["running_rooms"] == cumulative(window=3)
    assert load_metrics(tmp_path / "elsewhere", EXPLORES) == {}  # no metrics folder


def test_explore_columns_match_case_insensitively(tmp_path: Path) -> None:
    root = write_metrics(tmp_path, {"room_revenue.yml": FILES["room_revenue.yml"]})
    upper = {"room_nights": [c.upper() for c in COLUMNS]}
    assert set(load_metrics(root, upper)) == {"room_revenue"}


def problems_of(tmp_path: Path, files: Mapping[str, str]) -> list[str]:
    return [str(p) for p in validate_metrics(write_metrics(tmp_path, files), EXPLORES)]


def test_load_errors_name_file_and_line_and_are_all_collected(tmp_path: Path) -> None:
    broken = {
        "occupancy.yml": """\
            key: occupancy
            version: three
            type: ratio
            explore: room_nights
            time_dimension: stay_dat
            numerator: {agg: sum, expr: rooms_sold}
            denominator: {agg: total, expr: rooms_available}
            dimensions: [channel, colour]
            filters: ["status <> 'cancelled'", "stauts = 'ok'", "(select 1) = 1"]
            window: 3
            grain: [day]
            """,
        "room_revenue.yml": """\
            key: revenue
            version: 1
            type: simple
            explore: room_night
            time_dimension: stay_date
            measure:
              agg: sum
              expr: sum(room_revenue)
            """,
    }
    assert problems_of(tmp_path, broken) == [
        "metrics/occupancy.yml:2: version must be a whole number, not 'three'",
        "metrics/occupancy.yml:5: time_dimension: unknown column 'stay_dat' in explore"
        " 'room_nights' (did you mean 'stay_date'?)",
        "metrics/occupancy.yml:7: denominator.agg 'total' is not one of sum, count,"
        " count_distinct, avg, min, max",
        "metrics/occupancy.yml:8: dimensions: unknown column 'colour' in explore 'room_nights'",
        "metrics/occupancy.yml:9: filters[1]: unknown column 'stauts' in explore 'room_nights'"
        " (did you mean 'status'?)",
        "metrics/occupancy.yml:9: filters[2]: subqueries and statements are not allowed",
        "metrics/occupancy.yml:10: 'window' applies to cumulative metrics only, not ratio ones",
        "metrics/occupancy.yml:11: unknown key 'grain' (did you mean 'grains'?)",
        "metrics/room_revenue.yml:1: key 'revenue' does not match the file name 'room_revenue.yml'",
        "metrics/room_revenue.yml:4: unknown explore 'room_night' (did you mean 'room_nights'?)",
        # SQL is vetted even where the explore is unknown (only its columns go unchecked).
        "metrics/room_revenue.yml:8: measure.expr: aggregate 'sum' is not allowed here;"
        " a measure's agg aggregates",
    ]
    with pytest.raises(MetricLoadError, match=r"occupancy.yml:2: .* \(and 10 more problems\)") as e:
        load_metrics(tmp_path, EXPLORES)
    assert isinstance(e.value, ProjectError)
    assert len(e.value.problems) == 11


# Five lines of a sound simple metric over `bookings`; cases add lines 6 and on.
SIMPLE = "key: m\nversion: 1\ntype: simple\nexplore: bookings\ntime_dimension: booked_at\n"
COUNT = "measure: {agg: count}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            [
                "1: a metric needs a 'key'",
                "1: a metric needs a 'version'",
                "1: a metric needs a 'type' (one of simple, ratio, derived, cumulative)",
            ],
        ),
        ("- a\n- b\n", ["1: a metric must be a mapping of keys to values"]),
        (
            "key: m\nversion: 1\ntype: gauge\n",
            ["3: type 'gauge' is not one of simple, ratio, derived, cumulative"],
        ),
        (
            SIMPLE.replace("version: 1", "version: 0") + COUNT,
            ["2: version must be a positive whole number, not 0"],
        ),
        (SIMPLE, ["1: a simple metric needs 'measure'"]),
        (SIMPLE + "measure: {agg: sum}\n", ["6: measure needs an expr (only count may omit it)"]),
        (
            SIMPLE.replace("simple", "cumulative") + "measure: {agg: max, expr: booked_at}\n",
            [
                "6: measure.agg 'max': a cumulative metric adds up per-period values,"
                " so its agg is one of sum, count"
            ],
        ),
        (
            SIMPLE + COUNT + "grains: [day, hourly]\n",
            ["7: grain 'hourly' is not one of day, week, month, quarter, year"],
        ),
        (
            SIMPLE + COUNT + "freshness_slo: soon\n",
            ["7: freshness_slo must look like 30m, 6h or 2d, not 'soon'"],
        ),
        (SIMPLE + COUNT + "filters: status = 'ok'\n", ["7: filters must be a list"]),
        (
            SIMPLE + COUNT + "dimensions: [booked_at, booked_at]\n",
            ["7: a dimension is listed twice"],
        ),
        (SIMPLE + COUNT + "dimensions: [period]\n", ["7: dimension 'period' is a reserved name"]),
        (SIMPLE + COUNT + "owner: [a, b]\n", ["7: owner must be text, not a list"]),
        ("key: m\nversion: 1\nversion: 2\n", ["3: 'version' is set twice"]),
        (
            "key: m\nversion: 1\ntype: derived\nexpression: a + b\nuses: [a]\nwindow: 2\n",
            [
                "4: expression: 'b' is not in uses (expected one of: a)",
                "6: 'window' applies to cumulative metrics only, not derived ones",
            ],
        ),
        (
            "key: m\nversion: 1\ntype: derived\nexpression: a * 2\nuses: [a, m]\n",
            ["4: expression does not use 'm' (listed in uses)", "5: metric 'm' cannot use itself"],
        ),
    ],
)
def test_single_file_problems(tmp_path: Path, text: str, expected: list[str]) -> None:
    used = FILES["room_revenue.yml"].replace("key: room_revenue", "key: a")
    assert problems_of(tmp_path, {"m.yml": text, "a.yml": used}) == [
        f"metrics/m.yml:{p}" for p in expected
    ]


def test_derived_uses_must_exist_allow_the_grains_and_dimensions_and_not_loop(
    tmp_path: Path,
) -> None:
    files = {
        **FILES,
        "revpar.yml": """\
            key: revpar
            version: 1
            type: derived
            expression: "room_revenue / nullif(rooms_availble, 0)"
            uses: [room_revenue, rooms_availble]
            """,
        "ratio_of.yml": """\
            key: ratio_of
            version: 1
            type: derived
            expression: occupancy * 2
            uses: [occupancy]
            grains: [month, year]
            dimensions: [channel, status]
            """,
        "a.yml": "key: a\nversion: 1\ntype: derived\nexpression: b\nuses: [b]\n",
        "b.yml": "key: b\nversion: 1\ntype: derived\nexpression: a + c\nuses: [a, c]\n",
        "c.yml": "key: c\nversion: 1\ntype: derived\nexpression: c\nuses: [c]\n",
    }
    files["occupancy.yml"] = files["occupancy.yml"].replace(
        "day, week, month, quarter, year", "month"
    )
    assert problems_of(tmp_path, files) == [
        "metrics/a.yml:5: derived metrics form a cycle: a -> b -> a",
        "metrics/c.yml:5: metric 'c' cannot use itself",
        "metrics/ratio_of.yml:6: grain 'year' is not allowed by 'occupancy'",
        "metrics/ratio_of.yml:7: dimension 'status' is not allowed by 'occupancy'",
        "metrics/revpar.yml:5: uses: unknown metric 'rooms_availble' (did you mean"
        " 'rooms_available'?)",
    ]


def test_yaml_files_and_names(tmp_path: Path) -> None:
    files = {"Bad-Name.yml": "key: x\n", "occupancy.yaml": "key: occupancy\n", "notes.txt": "hi"}
    assert problems_of(tmp_path, files) == [
        "metrics/Bad-Name.yml: invalid metric 'Bad-Name': must match [a-z][a-z0-9_]{0,62}:"
        " lowercase letter first, then lowercase letters, digits or '_' (the file name is the"
        " metric's name)",
        "metrics/occupancy.yaml: metric files end in .yml: rename it to occupancy.yml",
    ]
    assert problems_of(tmp_path / "b", {"x.yml": "key: [unclosed\n"})[0].startswith(
        "metrics/x.yml:2: not valid YAML"
    )
