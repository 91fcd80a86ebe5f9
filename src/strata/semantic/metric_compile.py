"""Compile a metric and a request into one DuckDB query, as a sqlglot tree.

The query reads ``"explore"."<explore>"`` (the view the tenant sandbox exposes) and returns
``period`` (DATE: the time dimension truncated to the grain), the ``group_by`` dimensions in
request order, and ``value``, ordered by period then the dimensions. Rows are those whose
time dimension falls in ``[start, end]`` (whole days; the upper bound is ``< end + 1 day`` so
TIMESTAMP columns work too) and that pass the metric's default filters and the request's.

    simple      agg(expr) per period and group
    ratio       CAST(agg(num) AS DOUBLE) / NULLIF(agg(den), 0) per period and group: a ratio
                of the period's sums, never an average of per-row or per-day ratios
    derived     each used metric compiled with the same request as a CTE; their (period,
                group) keys united and each CTE LEFT JOINed on them (a full outer join with
                coalesced keys, NULL-safe on the dimensions), then the expression over their
                values. A key missing from one used metric gives NULL there.
    whole range ``MetricRequest.whole_range``: one period, ``start``, for the whole range
                (simple, ratio and derived metrics)
    cumulative  agg(expr) per period, then a running SUM over periods per group: from the
                beginning of the data (rows before ``start`` count) or, with ``window: N``,
                over the N periods ending at each period (again reading rows before
                ``start`` where the window reaches back). Every period from the one holding
                ``start`` to the one holding ``end`` appears for every group that has rows
                in what was read, a period without rows adding 0, so values are never NULL.
                The periods come from a spine built with VALUES (no generator function, so
                the query passes the guard); at most MAX_CUMULATIVE_PERIODS periods.

Request values only ever enter the tree as literals built by ``exp.convert``; dimension
names are checked against the metric's. Pure: no I/O and no DuckDB.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal, TypeAlias, get_args

from sqlglot import exp

from strata.core.errors import Terminal
from strata.core.identifiers import is_valid_name
from strata.semantic.guard import DIALECT
from strata.semantic.metrics import (
    GRAINS,
    Grain,
    Measure,
    MetricDefinition,
    MetricDefinitionError,
    parse_expression,
)

Scalar: TypeAlias = str | int | float | bool | Decimal | dt.date | dt.datetime | None
FilterOp = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"]

FILTER_OPS: Final[tuple[FilterOp, ...]] = get_args(FilterOp)
EXPLORE_SCHEMA: Final = "explore"  # as the sandbox exposes explores (semantic.explores)
MAX_FILTER_VALUES: Final = 1_000
MAX_CUMULATIVE_PERIODS: Final = 10_000

_SCALAR_TYPES: Final = (str, int, float, bool, Decimal, dt.date, dt.datetime)
_ONE_VALUE: Final = frozenset({"eq", "ne", "gt", "gte", "lt", "lte"})
_COMPARISONS: Final[Mapping[str, type[exp.Binary]]] = {
    "gt": exp.GT,
    "gte": exp.GTE,
    "lt": exp.LT,
    "lte": exp.LTE,
}
# One period as a date-arithmetic step: (interval unit, how many of it).
_STEPS: Final[Mapping[str, tuple[str, int]]] = {
    "day": ("DAY", 1),
    "week": ("DAY", 7),
    "month": ("MONTH", 1),
    "quarter": ("MONTH", 3),
    "year": ("MONTH", 12),
}
_PERIOD: Final = "period"
_VALUE: Final = "value"


class MetricRequestError(Terminal):
    """A request the metric cannot answer: ``str()`` names the problem in one line."""


@dataclass(frozen=True, slots=True)
class Filter:
    """``dimension <op> values``. ``eq``/``ne`` with ``None`` mean IS NULL / IS NOT NULL;
    ``ne`` and ``not_in`` keep rows where the dimension is NULL (IS DISTINCT FROM), so
    ``eq`` and ``ne`` on the same value split the rows in two."""

    dimension: str
    op: FilterOp
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if not is_valid_name(self.dimension):
            raise MetricRequestError(f"filter dimension {self.dimension!r} is not a name")
        if self.op not in FILTER_OPS:
            choices = ", ".join(FILTER_OPS)
            raise MetricRequestError(f"filter op {self.op!r} is not one of {choices}")
        object.__setattr__(self, "values", _as_tuple(self.values, f"'{self.dimension}' values"))
        where = f"filter {self.op} on '{self.dimension}'"
        if self.op in _ONE_VALUE and len(self.values) != 1:
            raise MetricRequestError(f"{where} takes one value, not {len(self.values)}")
        if not 0 < len(self.values) <= MAX_FILTER_VALUES:
            raise MetricRequestError(f"{where} takes 1..{MAX_FILTER_VALUES} values")
        for value in self.values:
            if value is None and self.op not in ("eq", "ne"):
                raise MetricRequestError(f"{where}: null only goes with eq or ne")
            if value is not None and type(value) not in _SCALAR_TYPES:
                kind = type(value).__name__
                raise MetricRequestError(f"{where}: a {kind} is not a filter value")
            if isinstance(value, float | Decimal) and not math.isfinite(value):
                raise MetricRequestError(f"{where}: {value} is not a filter value")


@dataclass(frozen=True, slots=True)
class MetricRequest:
    """What to compute: ``[start, end]`` (both dates, inclusive) at ``grain``."""

    start: dt.date
    end: dt.date
    grain: Grain
    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    # One period for the whole of [start, end] (``period`` is ``start``): a dashboard's
    # KPI or breakdown. The grain must still be one of the metric's. Not for cumulative
    # metrics, whose value over a range is the last period's.
    whole_range: bool = False

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if type(getattr(self, name)) is not dt.date:  # a datetime is a date subclass
                raise MetricRequestError(f"{name} must be a date, not {getattr(self, name)!r}")
        if self.start > self.end:
            raise MetricRequestError(f"start {self.start} is after end {self.end}")
        if self.end == dt.date.max:
            raise MetricRequestError("end is out of range")
        if self.grain not in GRAINS:
            raise MetricRequestError(f"grain {self.grain!r} is not one of {', '.join(GRAINS)}")
        for name in ("group_by", "filters"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name), name))
        for dimension in self.group_by:
            if not is_valid_name(dimension):
                raise MetricRequestError(f"group_by {dimension!r} is not a dimension name")
        if len(set(self.group_by)) != len(self.group_by):
            raise MetricRequestError("group_by lists a dimension twice")
        if not all(isinstance(f, Filter) for f in self.filters):
            raise MetricRequestError("filters must be Filter values")


def _as_tuple(value: object, what: str) -> tuple[object, ...]:
    """A list or tuple as a tuple (callers may pass lists); a str is not a list of values."""
    if not isinstance(value, list | tuple):
        raise MetricRequestError(f"{what} must be a list, not {type(value).__name__}")
    return tuple(value)


def compile_metric(
    metric: MetricDefinition,
    request: MetricRequest,
    registry: Mapping[str, MetricDefinition],
    *,
    schema: str = EXPLORE_SCHEMA,
) -> exp.Select:
    """The query answering ``request`` for ``metric``; ``registry`` supplies the metrics a
    derived metric uses (by key). Raises ``MetricRequestError`` if the request does not fit
    the metric, ``MetricDefinitionError`` if the registry lacks a used metric."""
    _check_request(metric, request, None)
    query = _compile(metric, request, registry, schema, (metric.key,))
    width = 2 + len(request.group_by)  # period, dimensions, value
    order = [exp.Ordered(this=exp.Literal.number(i), nulls_first=False) for i in range(1, width)]
    return query.order_by(*order)


def compile_metric_sql(
    metric: MetricDefinition,
    request: MetricRequest,
    registry: Mapping[str, MetricDefinition],
    *,
    schema: str = EXPLORE_SCHEMA,
) -> str:
    """``compile_metric`` as DuckDB SQL."""
    return compile_metric(metric, request, registry, schema=schema).sql(dialect=DIALECT)


def _check_request(metric: MetricDefinition, request: MetricRequest, used_by: str | None) -> None:
    which = f"metric '{metric.key}'" + (f" (used by '{used_by}')" if used_by else "")
    if request.grain not in metric.grains:
        allowed = ", ".join(metric.grains)
        raise MetricRequestError(f"{which} has no grain '{request.grain}' (grains: {allowed})")
    asked = [*request.group_by, *(f.dimension for f in request.filters)]
    for dimension in asked:
        if dimension not in metric.dimensions:
            allowed = ", ".join(metric.dimensions) or "none"
            raise MetricRequestError(
                f"{which} has no dimension '{dimension}' (dimensions: {allowed})"
            )


def _compile(
    metric: MetricDefinition,
    request: MetricRequest,
    registry: Mapping[str, MetricDefinition],
    schema: str,
    stack: tuple[str, ...],
) -> exp.Select:
    if metric.type == "derived":
        return _derived(metric, request, registry, schema, stack)
    if metric.type == "cumulative":
        if request.whole_range:
            raise MetricRequestError(
                f"metric '{metric.key}' is cumulative: ask for its periods, not one whole range"
            )
        return _cumulative(metric, request, schema)
    if metric.type == "ratio":
        assert metric.numerator is not None
        assert metric.denominator is not None
        value: exp.Expr = exp.Div(
            this=exp.cast(_aggregate(metric.numerator), exp.DataType.Type.DOUBLE),
            expression=exp.Nullif(
                this=_aggregate(metric.denominator), expression=exp.Literal.number(0)
            ),
        )
    else:
        assert metric.measure is not None
        value = _aggregate(metric.measure)
    if request.whole_range:
        period: exp.Expr = exp.cast(exp.convert(request.start), exp.DataType.Type.DATE)
    else:
        period = _period(metric, request.grain)
    return _grouped(metric, request, schema, period, value, lower=request.start)


# -- simple and ratio ----------------------------------------------------------------------


def _grouped(
    metric: MetricDefinition,
    request: MetricRequest,
    schema: str,
    period: exp.Expr,
    value: exp.Expr,
    *,
    lower: dt.date | None,
) -> exp.Select:
    """``period, dimensions, value`` over the explore's rows in ``[lower, end]`` (no lower
    bound if ``lower`` is None) that pass every filter, grouped by period and dimensions."""
    assert metric.explore is not None
    time = _column(metric.time_dimension)
    conditions: list[exp.Expr] = []
    if lower is not None:
        conditions.append(exp.GTE(this=time.copy(), expression=exp.convert(lower)))
    upper = request.end + dt.timedelta(days=1)
    conditions.append(exp.LT(this=time.copy(), expression=exp.convert(upper)))
    conditions += [exp.Paren(this=parse_expression(sql)) for sql in metric.filters]
    conditions += [_filter(f) for f in request.filters]
    dimensions = [_column(d) for d in request.group_by]
    table = exp.Table(
        this=exp.to_identifier(metric.explore, quoted=True),
        db=exp.to_identifier(schema, quoted=True),
    )
    return (
        exp.select(
            exp.alias_(period, _PERIOD, quoted=True),
            *(exp.alias_(d, d.name, quoted=True) for d in dimensions),
            exp.alias_(value, _VALUE, quoted=True),
        )
        .from_(table)
        .where(exp.and_(*conditions))
        .group_by(period.copy(), *(d.copy() for d in dimensions))
    )


def _aggregate(measure: Measure) -> exp.Expr:
    if measure.expr is None:  # count only (MetricDefinition checks it)
        return exp.Count(this=exp.Star())
    expr = parse_expression(measure.expr)
    if measure.agg == "count":
        return exp.Count(this=expr)
    if measure.agg == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[expr]))
    aggregates: Mapping[str, type[exp.AggFunc]] = {
        "sum": exp.Sum,
        "avg": exp.Avg,
        "min": exp.Min,
        "max": exp.Max,
    }
    return aggregates[measure.agg](this=expr)


def _period(metric: MetricDefinition, grain: str) -> exp.Expr:
    truncated = exp.TimestampTrunc(this=_column(metric.time_dimension), unit=exp.var(grain.upper()))
    return exp.cast(truncated, exp.DataType.Type.DATE)


def _filter(condition: Filter) -> exp.Expr:
    column = _column(condition.dimension)
    values = [exp.convert(v) for v in condition.values]
    op = condition.op
    if op in ("eq", "ne") and condition.values[0] is None:
        is_null = exp.Is(this=column, expression=exp.Null())
        return is_null if op == "eq" else exp.Not(this=is_null)
    if op == "eq":
        return exp.EQ(this=column, expression=values[0])
    if op == "ne":
        return exp.NullSafeNEQ(this=column, expression=values[0])
    if op in ("in", "not_in"):
        within = exp.In(this=column, expressions=values)
        if op == "in":
            return within
        missing = exp.Is(this=column.copy(), expression=exp.Null())
        return exp.Paren(this=exp.or_(missing, exp.Not(this=within)))
    return _COMPARISONS[op](this=column, expression=values[0])


def _column(name: str | None, table: str | None = None) -> exp.Column:
    assert name is not None
    return exp.column(name, table=table, quoted=True)


# -- derived -------------------------------------------------------------------------------


def _derived(
    metric: MetricDefinition,
    request: MetricRequest,
    registry: Mapping[str, MetricDefinition],
    schema: str,
    stack: tuple[str, ...],
) -> exp.Select:
    assert metric.expression is not None
    keys = (_PERIOD, *request.group_by)
    ctes: list[tuple[str, exp.Select]] = []
    for use in metric.uses:
        used = registry.get(use)
        if used is None:
            raise MetricDefinitionError(
                f"metric '{metric.key}' uses '{use}', which the registry does not have"
            )
        if use in stack:
            raise MetricDefinitionError(f"derived metrics form a cycle: {' -> '.join(stack)}")
        _check_request(used, request, metric.key)
        ctes.append((_use(use), _compile(used, request, registry, schema, (*stack, use))))
    union: exp.Query = exp.select(*(_column(k) for k in keys)).from_(ctes[0][0])
    for name, _ in ctes[1:]:
        union = exp.union(union, exp.select(*(_column(k) for k in keys)).from_(name))

    def value_of(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column):
            if node.name not in metric.uses:
                raise MetricDefinitionError(
                    f"metric '{metric.key}': expression reads '{node.name}', not in uses"
                )
            return _column(_VALUE, _use(node.name))
        return node

    expression = parse_expression(metric.expression).transform(value_of)
    query = exp.select(
        *(exp.alias_(_column(k, "__keys"), k, quoted=True) for k in keys),
        exp.alias_(expression, _VALUE, quoted=True),
    ).from_(exp.to_table("__keys"))
    for name, _ in ctes:
        on: list[exp.Expr] = [
            exp.EQ(this=_column(_PERIOD, "__keys"), expression=_column(_PERIOD, name))
        ]
        on += [
            exp.NullSafeEQ(this=_column(d, "__keys"), expression=_column(d, name))
            for d in request.group_by
        ]
        query = query.join(exp.to_table(name), on=exp.and_(*on), join_type="left")
    for name, body in ctes:
        query = query.with_(name, as_=body)
    return query.with_("__keys", as_=union)


def _use(key: str) -> str:
    return f"__use_{key}"  # a metric key starts with a letter: no clash with other CTEs


# -- cumulative ----------------------------------------------------------------------------


def _cumulative(metric: MetricDefinition, request: MetricRequest, schema: str) -> exp.Select:
    assert metric.measure is not None
    grain = request.grain
    first, last = truncate(request.start, grain), truncate(request.end, grain)
    period = _period(metric, grain)
    lower: dt.date | None
    if metric.window is None:
        # Everything before the first period counts into it: the total since the beginning.
        period = exp.Greatest(this=period, expressions=[exp.convert(first)])
        spine_start, lower = first, None
    else:
        try:
            spine_start = shift(first, grain, 1 - metric.window)
        except (OverflowError, ValueError):
            raise MetricRequestError("the window reaches before the first date") from None
        lower = spine_start
    count = periods_between(spine_start, last, grain)
    if count > MAX_CUMULATIVE_PERIODS:
        raise MetricRequestError(
            f"metric '{metric.key}' would span {count} {grain} periods (window included); "
            f"the limit is {MAX_CUMULATIVE_PERIODS}: use a coarser grain or a shorter range"
        )
    per_period = _grouped(metric, request, schema, period, _aggregate(metric.measure), lower=lower)
    dimensions = request.group_by
    group_columns: list[exp.Expr] = [_column(d) for d in dimensions]
    if not group_columns:  # one group, if there are any rows
        group_columns.append(exp.alias_(exp.true(), "__all", quoted=True))
    groups = exp.select(*group_columns).distinct().from_("__per_period")

    frame_start: exp.Expr | str = (
        "UNBOUNDED" if metric.window is None else exp.Literal.number(metric.window - 1)
    )
    running_sum = exp.Window(
        this=exp.Sum(
            this=exp.Coalesce(this=_column(_VALUE, "__p"), expressions=[exp.Literal.number(0)])
        ),
        partition_by=[_column(d, "__g") for d in dimensions],
        order=exp.Order(expressions=[exp.Ordered(this=_column(_PERIOD, "__s"))]),
        spec=exp.WindowSpec(
            kind="ROWS", start=frame_start, start_side="PRECEDING", end="CURRENT ROW"
        ),
    )
    on: list[exp.Expr] = [exp.EQ(this=_column(_PERIOD, "__p"), expression=_column(_PERIOD, "__s"))]
    on += [exp.NullSafeEQ(this=_column(d, "__p"), expression=_column(d, "__g")) for d in dimensions]
    running = (
        exp.select(
            exp.alias_(_column(_PERIOD, "__s"), _PERIOD, quoted=True),
            *(exp.alias_(_column(d, "__g"), d, quoted=True) for d in dimensions),
            exp.alias_(running_sum, _VALUE, quoted=True),
        )
        .from_(exp.to_table("__spine").as_("__s"))
        .join(exp.to_table("__groups").as_("__g"), join_type="cross")
        .join(exp.to_table("__per_period").as_("__p"), on=exp.and_(*on), join_type="left")
    )
    return (
        exp.select(*(_column(c) for c in (_PERIOD, *dimensions, _VALUE)))
        .from_("__running")
        .where(exp.GTE(this=_column(_PERIOD), expression=exp.convert(first)))
        .with_("__per_period", as_=per_period)
        .with_("__spine", as_=_spine(spine_start, count, grain))
        .with_("__groups", as_=groups)
        .with_("__running", as_=running)
    )


def _spine(first: dt.date, count: int, grain: str) -> exp.Select:
    """``count`` consecutive periods from ``first``: offsets 0..count-1 from crossed VALUES
    tables of the digits 0-9 (one per decimal digit of count-1)."""
    digits = len(str(count - 1))
    tables = [
        exp.values([(i,) for i in range(10)], alias=f"__d{j}", columns=["i"]) for j in range(digits)
    ]
    offset: exp.Expr = _column("i", "__d0")
    for j in range(1, digits):
        place = exp.Mul(this=_column("i", f"__d{j}"), expression=exp.Literal.number(10**j))
        offset = exp.Add(this=offset, expression=place)
    unit, step = _STEPS[grain]
    period = exp.DateAdd(
        this=exp.convert(first),
        expression=exp.Mul(this=exp.Paren(this=offset.copy()), expression=exp.Literal.number(step)),
        unit=exp.var(unit),
    )
    query = exp.select(exp.alias_(exp.cast(period, exp.DataType.Type.DATE), _PERIOD, quoted=True))
    query = query.from_(tables[0])
    for table in tables[1:]:
        query = query.join(table, join_type="cross")
    return query.where(exp.LT(this=offset, expression=exp.Literal.number(count)))


# -- periods -------------------------------------------------------------------------------


def truncate(day: dt.date, grain: str) -> dt.date:
    """The first day of the period holding ``day``, as DuckDB's date_trunc (ISO weeks)."""
    if grain == "day":
        return day
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    month = {"month": day.month, "quarter": 3 * ((day.month - 1) // 3) + 1, "year": 1}[grain]
    return dt.date(day.year, month, 1)


def shift(period: dt.date, grain: str, periods: int) -> dt.date:
    """The period ``periods`` after (before, if negative) the period starting ``period``."""
    unit, step = _STEPS[grain]
    if unit == "DAY":
        return period + dt.timedelta(days=step * periods)
    months = period.year * 12 + period.month - 1 + step * periods
    return dt.date(months // 12, months % 12 + 1, 1)


def periods_between(first: dt.date, last: dt.date, grain: str) -> int:
    """How many periods from the one starting ``first`` to the one starting ``last``."""
    unit, step = _STEPS[grain]
    if unit == "DAY":
        return (last - first).days // step + 1
    months = (last.year - first.year) * 12 + last.month - first.month
    return months // step + 1
