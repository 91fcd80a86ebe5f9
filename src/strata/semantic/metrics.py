"""Metrics: versioned definitions of business numbers over an explore, read from YAML.

One metric per file, ``metrics/<key>.yml``::

    key: occupancy                 # lowercase identifier; equal to the file's stem
    version: 3                     # positive int; change it to change the definition
    type: ratio                    # simple | ratio | derived | cumulative
    explore: room_nights           # not for derived metrics
    time_dimension: stay_date      # not for derived metrics
    numerator: {agg: sum, expr: rooms_sold}
    denominator: {agg: sum, expr: rooms_available}
    grains: [day, week, month]     # default: all five
    dimensions: [channel]          # allowed group-by / filter dimensions; default none
    filters: ["status <> 'cancelled'"]
    freshness_slo: 6h              # <n>s | <n>m | <n>h | <n>d

SQL in ``expr``, ``filters`` and ``expression`` is one scalar expression, vetted against an
allowlist narrower than the query guard's (``strata.semantic.guard``, intersected with it):
columns by bare name, literals, arithmetic, comparisons, CASE, COALESCE/NULLIF, CAST and
deterministic string/date functions. Aggregates, windows, subqueries, table references,
parameters and ``current_date`` and friends are refused, so a definition means the same
thing whenever it is computed.

``MetricDefinition`` is valid whenever it exists (its constructor checks the shape and the
SQL); ``load_metrics`` adds what needs the project: explore columns, file names and the
metrics a derived metric uses. The compiler is ``strata.semantic.metric_compile``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, get_args

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from strata.core.errors import ConfigError
from strata.core.identifiers import NAME_RULE, is_valid_name
from strata.semantic.guard import (
    ALLOWED_FUNCTION_NAMES,
    ALLOWED_FUNCTIONS,
    ALLOWED_SYNTAX,
    DIALECT,
    function_name,
    snippet,
)
from strata.transform.config import Node, ProjectError, Reader, suggest
from strata.transform.project import read_yaml, relative_path, stem_name

MetricType = Literal["simple", "ratio", "derived", "cumulative"]
Agg = Literal["sum", "count", "count_distinct", "avg", "min", "max"]
Grain = Literal["day", "week", "month", "quarter", "year"]
# An explore's column names (the fact's and its dimensions'), as the caller read them from
# the Delta schemas. Compared case-insensitively, as DuckDB resolves names. A loader maps an
# explore to None when its tables are not built yet: the explore is known, its columns not.
ExploreColumns: TypeAlias = Collection[str]

METRIC_TYPES: Final[tuple[MetricType, ...]] = get_args(MetricType)
AGGS: Final[tuple[Agg, ...]] = get_args(Agg)
GRAINS: Final[tuple[Grain, ...]] = get_args(Grain)
# A running total adds up per-period values: only additive aggregates give the right total.
CUMULATIVE_AGGS: Final[tuple[Agg, ...]] = ("sum", "count")
# The compiled query's own output columns; a dimension may not take their names.
RESERVED_COLUMNS: Final = ("period", "value")
METRICS_DIR: Final = "metrics"
MAX_SQL_CHARS: Final = 10_000

_READS: Final = ("explore", "time_dimension", "filters")
_TYPE_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "simple": (*_READS, "measure"),
    "cumulative": (*_READS, "measure", "window"),
    "ratio": (*_READS, "numerator", "denominator"),
    "derived": ("expression", "uses"),
}
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "simple": ("explore", "time_dimension", "measure"),
    "cumulative": ("explore", "time_dimension", "measure"),
    "ratio": ("explore", "time_dimension", "numerator", "denominator"),
    "derived": ("expression", "uses"),
}
_COMMON_KEYS: Final = (
    "key",
    "version",
    "type",
    "description",
    "owner",
    "grains",
    "dimensions",
    "freshness_slo",
)
_ALL_KEYS: Final = tuple(dict.fromkeys(k for keys in _TYPE_KEYS.values() for k in keys))
_MEASURE_KEYS: Final = ("agg", "expr")
_MEASURES: Final = ("measure", "numerator", "denominator")
_DURATION_RE: Final = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECOND: Final = dt.timedelta(seconds=1)

# -- the SQL allowlist: the guard's, narrowed to scalar expressions --------------------------

_SCALAR_SYNTAX: Final[frozenset[type[exp.Expr]]] = ALLOWED_SYNTAX & frozenset({
    exp.Column, exp.Identifier, exp.Literal, exp.Null, exp.Boolean, exp.Var, exp.Interval,
    exp.DataType, exp.DataTypeParam, exp.Paren, exp.And, exp.Or, exp.Not, exp.Neg, exp.Case,
    exp.If, exp.Cast, exp.TryCast, exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ, exp.GT,
    exp.GTE, exp.LT, exp.LTE, exp.Between, exp.In, exp.Is, exp.Like, exp.ILike, exp.Escape,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.DPipe,
})  # fmt: skip
# Aggregates and window functions belong to the metric's `agg`, not to its SQL; the clock
# functions would make a definition mean something different every day.
_SCALAR_FUNCTIONS: Final[frozenset[type[exp.Expr]]] = frozenset(
    f for f in ALLOWED_FUNCTIONS if not issubclass(f, exp.AggFunc)
) - {exp.RowNumber, exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp}
_SCALAR_ANONYMOUS: Final = ALLOWED_FUNCTION_NAMES & {
    "date_part",
    "datepart",
    "date_sub",
    "datesub",
    "iff",
    "strlen",
}
# A bare word (sqlglot's Var) is only the unit of a date function or interval; anywhere else
# DuckDB would read it as a column the column check never saw.
_VAR_PARENTS: Final = (
    exp.Interval,
    exp.Extract,
    exp.DateTrunc,
    exp.TimestampTrunc,
    exp.DateAdd,
    exp.DateSub,
    exp.DateDiff,
)


class MetricDefinitionError(ConfigError):
    """A metric definition is not valid (built in code or read back from the catalog)."""


class MetricSqlError(ConfigError):
    """SQL in a metric definition is not one allowed scalar expression."""


class MetricLoadError(ProjectError):
    """The project's metrics have problems: ``problems`` holds all of them, in file order;
    the message is the first one (and how many more there are)."""

    def __init__(self, problems: list[ProjectError]) -> None:
        self.problems = tuple(problems)
        first = problems[0]
        more = len(problems) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(first.path, first.line, first.problem + extra)


# -- definitions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measure:
    """``agg(expr)``; ``expr`` may be left out only for ``count`` (``COUNT(*)``)."""

    agg: Agg
    expr: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {"agg": self.agg} if self.expr is None else {"agg": self.agg, "expr": self.expr}


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One version of one metric. Fields a type does not use stay at their defaults."""

    key: str
    version: int
    type: MetricType
    explore: str | None = None
    time_dimension: str | None = None
    measure: Measure | None = None  # simple, cumulative
    numerator: Measure | None = None  # ratio
    denominator: Measure | None = None  # ratio
    expression: str | None = None  # derived: SQL over the keys in `uses`
    uses: tuple[str, ...] = ()  # derived
    window: int | None = None  # cumulative: trailing periods; None = since the beginning
    grains: tuple[Grain, ...] = GRAINS
    dimensions: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    description: str = ""
    owner: str | None = None
    freshness_slo: dt.timedelta | None = None

    def __post_init__(self) -> None:
        problems = _shape_problems(_field_values(self))
        if problems:
            raise MetricDefinitionError(f"metric '{self.key}': {problems[0][1]}")

    def to_dict(self) -> dict[str, Any]:
        """The canonical document: JSON types only, and every field left at its default
        (None, empty) is omitted, so a later optional field does not change old hashes."""
        document: dict[str, Any] = {}
        for name, value in _field_values(self).items():
            if value is None or value in ("", ()):
                continue
            if isinstance(value, Measure):
                document[name] = value.to_dict()
            elif isinstance(value, dt.timedelta):
                document["freshness_slo_seconds"] = int(value.total_seconds())
            else:
                document[name] = list(value) if isinstance(value, tuple) else value
        return document

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of ``canonical_json()``: what the registry compares."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> MetricDefinition:
        """The definition ``to_dict`` wrote (e.g. read back from the catalog)."""
        known = {f.name for f in fields(cls)} - {"freshness_slo"} | {"freshness_slo_seconds"}
        unknown = sorted(set(document) - known)
        if unknown:
            raise MetricDefinitionError(f"unknown field '{unknown[0]}' in a metric document")
        values: dict[str, Any] = dict(document)
        for name in _MEASURES:
            if name in values:
                values[name] = _measure_from(values[name], name)
        for name in ("uses", "grains", "dimensions", "filters"):
            if name in values:
                if not isinstance(values[name], list):
                    raise MetricDefinitionError(f"metric document: {name} must be a list")
                values[name] = tuple(values[name])
        seconds = values.pop("freshness_slo_seconds", None)
        if seconds is not None:
            if type(seconds) is not int:
                raise MetricDefinitionError("metric document: freshness_slo_seconds is not int")
            values["freshness_slo"] = dt.timedelta(seconds=seconds)
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            raise MetricDefinitionError(f"metric document: {exc}") from None


def _measure_from(value: object, name: str) -> Measure:
    if not isinstance(value, Mapping) or not set(value) <= {"agg", "expr"}:
        raise MetricDefinitionError(f"metric document: {name} must be {{agg, expr}}")
    agg: Any = value.get("agg")  # checked by _shape_problems, as is expr
    return Measure(agg, value.get("expr"))


def _field_values(definition: MetricDefinition) -> dict[str, Any]:
    return {f.name: getattr(definition, f.name) for f in fields(definition)}


def _shape_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with a definition's fields on their own, as (YAML key, problem).
    Shared by the constructor and the YAML reader, so both apply the same rules."""
    problems: list[tuple[str, str]] = []
    key, version, kind = values["key"], values["version"], values["type"]
    if not is_valid_name(key):
        problems.append(("key", f"key {key!r} {NAME_RULE}"))
    if type(version) is not int or version < 1:
        problems.append(("version", f"version must be a positive whole number, not {version!r}"))
    if kind not in METRIC_TYPES:
        choices = ", ".join(METRIC_TYPES)
        problems.append(("type", f"type {kind!r} is not one of {choices}"))
        return problems
    for name in _REQUIRED[kind]:
        if values[name] in (None, ()):
            problems.append((name, f"a {kind} metric needs '{name}'"))
    for name in _ALL_KEYS:
        if name not in _TYPE_KEYS[kind] and values[name] not in (None, ()):
            problems.append((name, f"'{name}' {_applies_to(name)}, not {kind} ones"))
    for name in _MEASURES:
        problems += [(name, p) for p in _measure_problems(values[name], name, kind)]
    window = values["window"]
    if window is not None and (type(window) is not int or window < 1):
        problems.append(("window", f"window must be a positive whole number, not {window!r}"))
    problems += [("grains", p) for p in _grain_problems(values["grains"])]
    dimensions, uses = values["dimensions"], values["uses"]
    problems += [("dimensions", p) for p in _name_list_problems(dimensions, "dimension")]
    for dimension in dimensions if isinstance(dimensions, tuple) else ():
        if isinstance(dimension, str) and dimension.lower() in RESERVED_COLUMNS:
            problems.append(("dimensions", f"dimension '{dimension}' is a reserved name"))
    problems += [("uses", p) for p in _name_list_problems(uses, "metric")]
    if isinstance(uses, tuple) and key in uses:
        problems.append(("uses", f"metric '{key}' cannot use itself"))
    for name in ("explore", "time_dimension", "owner"):
        value = values[name]
        if value is not None and not (isinstance(value, str) and value):
            problems.append((name, f"{name} must be non-empty text"))
    if not isinstance(values["description"], str):
        problems.append(("description", "description must be text"))
    if not isinstance(values["filters"], tuple):
        problems.append(("filters", "filters must be a list of SQL conditions"))
    for name in ("explore", "time_dimension"):
        value = values[name]
        if isinstance(value, str) and value and not is_valid_name(value):
            problems.append((name, f"{name} {value!r} {NAME_RULE}"))
    slo = values["freshness_slo"]
    if slo is not None and not (
        isinstance(slo, dt.timedelta) and slo > dt.timedelta(0) and not slo % _SECOND
    ):
        problems.append(("freshness_slo", "freshness_slo must be a positive whole of seconds"))
    for name in ("expression", "filters"):
        texts = values[name] if name == "filters" else (values[name],)
        for text in texts if isinstance(texts, tuple) else ():
            if text is None:
                continue
            try:
                parse_expression(text)
            except MetricSqlError as exc:
                problems.append((name, f"{name}: {exc}"))
    return problems


def _applies_to(name: str) -> str:
    kinds = [k for k in METRIC_TYPES if name in _TYPE_KEYS[k]]
    return f"applies to {', '.join(kinds)} metrics only"


def _measure_problems(measure: object, name: str, kind: str) -> list[str]:
    if measure is None:
        return []
    if not isinstance(measure, Measure):
        return [f"{name} must be a Measure"]
    if measure.agg not in AGGS:
        return [f"{name}.agg {measure.agg!r} is not one of {', '.join(AGGS)}"]
    if kind == "cumulative" and measure.agg not in CUMULATIVE_AGGS:
        return [
            f"{name}.agg '{measure.agg}': a cumulative metric adds up per-period values, "
            f"so its agg is one of {', '.join(CUMULATIVE_AGGS)}"
        ]
    if measure.expr is None:
        return [] if measure.agg == "count" else [f"{name} needs an expr (only count may omit it)"]
    try:
        parse_expression(measure.expr)
    except MetricSqlError as exc:
        return [f"{name}.expr: {exc}"]
    return []


def _grain_problems(grains: object) -> list[str]:
    if not isinstance(grains, tuple) or not grains:
        return ["grains must list at least one grain"]
    for grain in grains:
        if grain not in GRAINS:
            return [f"grain {grain!r} is not one of {', '.join(GRAINS)}"]
    if len(set(grains)) != len(grains):
        return ["grains lists a grain twice"]
    return []


def _name_list_problems(names: object, kind: str) -> list[str]:
    if not isinstance(names, tuple):
        return [f"{kind}s must be a list"]
    for name in names:
        if not is_valid_name(name):
            return [f"{kind} {name!r} {NAME_RULE}"]
    if len(set(names)) != len(names):
        return [f"a {kind} is listed twice"]
    return []


# -- SQL expressions -----------------------------------------------------------------------


def parse_expression(sql: str) -> exp.Expr:
    """One vetted scalar expression; ``MetricSqlError`` says what is not allowed."""
    if not isinstance(sql, str):
        raise MetricSqlError(f"must be SQL text, not {sql!r}")
    if len(sql) > MAX_SQL_CHARS:
        raise MetricSqlError(f"is {len(sql)} characters; the limit is {MAX_SQL_CHARS}")
    try:
        parsed = sqlglot.parse(sql, read=DIALECT)
    except ParseError as exc:
        first = exc.errors[0].get("description") if exc.errors else None
        raise MetricSqlError(f"does not parse: {first or _one_line(str(exc))}") from None
    except SqlglotError as exc:
        raise MetricSqlError(f"does not parse: {_one_line(str(exc))}") from None
    except RecursionError:
        raise MetricSqlError("is nested too deeply") from None
    trees = [t for t in parsed if t is not None and not isinstance(t, exp.Semicolon)]
    if len(trees) != 1:
        raise MetricSqlError("must be exactly one SQL expression" if trees else "is empty")
    tree = trees[0]
    for node in tree.walk(bfs=False):
        _vet_node(node)
    return tree


def _vet_node(node: exp.Expr) -> None:
    kind = type(node)
    if kind is exp.Anonymous:
        if not (node.name.isascii() and node.name.lower() in _SCALAR_ANONYMOUS):
            raise MetricSqlError(f"function '{node.name}' is not allowed")
    elif kind in _SCALAR_FUNCTIONS:
        return
    elif kind in _SCALAR_SYNTAX:
        if isinstance(node, exp.Column) and (
            node.table or not isinstance(node.this, exp.Identifier)
        ):
            raise MetricSqlError(f"'{snippet(node, 60)}': name columns without a table")
        if isinstance(node, exp.Var) and not isinstance(node.parent, _VAR_PARENTS):
            raise MetricSqlError(f"'{node.name}' is not allowed here")
        if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.USERDEFINED:
            raise MetricSqlError(f"type '{node.args.get('kind')}' is not allowed")
    elif isinstance(node, exp.Query | exp.Subquery | exp.Exists):
        raise MetricSqlError("subqueries and statements are not allowed")
    elif isinstance(node, exp.Table):
        raise MetricSqlError("table references are not allowed")
    elif isinstance(node, exp.Window):
        raise MetricSqlError("window functions are not allowed")
    elif isinstance(node, exp.AggFunc):
        raise MetricSqlError(
            f"aggregate '{node.key}' is not allowed here; a measure's agg aggregates"
        )
    else:
        is_function = isinstance(node, exp.Func)
        what = f"function '{function_name(node)}'" if is_function else snippet(node, 60)
        raise MetricSqlError(f"{what} is not allowed")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def column_names(tree: exp.Expr) -> list[str]:
    """The column names a vetted expression reads, in order of appearance, once each."""
    return list(dict.fromkeys(c.name for c in tree.find_all(exp.Column)))


# -- loading -------------------------------------------------------------------------------


def load_metrics(
    project_root: str | os.PathLike[str],
    explores: Mapping[str, ExploreColumns | None],
    *,
    metrics_dir: str = METRICS_DIR,
) -> dict[str, MetricDefinition]:
    """The metrics in ``<project_root>/<metrics_dir>/*.yml`` by key (none if the folder is
    absent); raises ``MetricLoadError`` holding every problem if anything is wrong."""
    metrics, problems = _load(Path(project_root), explores, metrics_dir)
    if problems:
        raise MetricLoadError(problems)
    return metrics


def validate_metrics(
    project_root: str | os.PathLike[str],
    explores: Mapping[str, ExploreColumns | None],
    *,
    metrics_dir: str = METRICS_DIR,
) -> list[ProjectError]:
    """Every problem in the project's metrics, in file order; empty if they load."""
    return _load(Path(project_root), explores, metrics_dir)[1]


@dataclass(frozen=True, slots=True)
class _Loaded:
    definition: MetricDefinition
    path: str
    lines: Mapping[str, int | None]  # YAML key -> line, for problems found across files


def _load(
    root: Path, explores: Mapping[str, ExploreColumns | None], metrics_dir: str
) -> tuple[dict[str, MetricDefinition], list[ProjectError]]:
    problems: list[ProjectError] = []
    loaded: dict[str, _Loaded] = {}
    broken: set[str] = set()  # files that have problems: others must not re-report them
    folder = root / metrics_dir
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        rel = relative_path(root, path)
        if path.suffix == ".yaml":
            problem = f"metric files end in .yml: rename it to {path.stem}.yml"
            problems.append(ProjectError(rel, None, problem))
            continue
        if path.suffix != ".yml":
            continue
        before = len(problems)
        stem = stem_name(path.stem, "metric", rel, problems)
        node = read_yaml(path, rel, problems)
        if stem is None or node is None:
            broken.add(path.stem)
            continue
        result = _read_metric(stem, node, rel, explores, problems)
        if result is not None and len(problems) == before:
            loaded[stem] = result
        else:
            broken.add(path.stem)
    _check_derived(loaded, broken, problems)
    problems.sort(key=lambda p: (p.path, p.line or 0))  # stable: same line, reading order
    return {k: v.definition for k, v in loaded.items()}, problems


def _read_metric(
    stem: str,
    node: Node,
    path: str,
    explores: Mapping[str, ExploreColumns | None],
    problems: list[ProjectError],
) -> _Loaded | None:
    reader, before = Reader(path, problems), len(problems)
    items = reader.mapping(node, "a metric")
    if items is None:
        return None
    start = node.line
    unreadable: set[str] = set()  # keys already reported: the shape check must not repeat them

    kind = reader.text(items.get("type"), "type")
    allowed = _TYPE_KEYS.get(kind or "", _ALL_KEYS)
    misplaced = {k: f"{_applies_to(k)}, not {kind} ones" for k in _ALL_KEYS if k not in allowed}
    reader.check_keys(items, (*_COMMON_KEYS, *allowed), misplaced)
    unreadable.update(k for k in items if k in misplaced)

    def text(name: str) -> str | None:
        value = reader.text(items.get(name), name)
        if value is None and name in items:
            unreadable.add(name)
        return value

    key = text("key")
    if key is None and "key" not in items:
        reader.problem(start, "a metric needs a 'key'")
        unreadable.add("key")
    if key is not None and key != stem:
        reader.problem(items["key"].line, f"key '{key}' does not match the file name '{stem}.yml'")
    version = _integer(reader, items.get("version"), "version", unreadable)
    if "version" not in items:
        reader.problem(start, "a metric needs a 'version'")
        unreadable.add("version")
    if kind is None:
        unreadable.add("type")
        if "type" not in items:
            reader.problem(start, f"a metric needs a 'type' (one of {', '.join(METRIC_TYPES)})")

    explore = text("explore")
    columns: ExploreColumns | None = None
    if explore is not None and is_valid_name(explore):
        if explore not in explores:
            hint = suggest(explore, explores, list_all=False)
            reader.problem(items["explore"].line, f"unknown explore '{explore}'{hint}")
            unreadable.add("explore")
        else:  # None: a known explore whose tables are not built, so columns go unchecked
            columns = explores[explore]
    checker = _ColumnChecker(reader, explore, columns)

    time_dimension = text("time_dimension")
    if time_dimension is not None and is_valid_name(time_dimension):
        checker.check_name(time_dimension, items["time_dimension"], "time_dimension")
    grains = _texts(reader, items.get("grains"), "grains", unreadable)
    dimensions = _texts(reader, items.get("dimensions"), "dimensions", unreadable)
    for dimension, item in _with_nodes(dimensions, items.get("dimensions")):
        if is_valid_name(dimension) and dimension.lower() not in RESERVED_COLUMNS:
            checker.check_name(dimension, item, "dimensions")
    filters = _texts(reader, items.get("filters"), "filters", unreadable)
    for index, (sql, item) in enumerate(_with_nodes(filters, items.get("filters"))):
        checker.check_sql(sql, item, f"filters[{index}]", unreadable, "filters")
    measures = {
        name: _read_measure(reader, items[name], name, checker, unreadable)
        for name in _MEASURES
        if name in items and name in allowed
    }
    uses = _texts(reader, items.get("uses"), "uses", unreadable)
    expression = text("expression")
    if expression is not None and uses is not None:
        _check_expression(reader, items["expression"], expression, uses, unreadable)
    window = _integer(reader, items.get("window"), "window", unreadable)
    slo = _duration(reader, items.get("freshness_slo"), unreadable)

    values: dict[str, Any] = {
        "key": key,
        "version": version,
        "type": kind,
        "explore": explore,
        "time_dimension": time_dimension,
        "measure": measures.get("measure"),
        "numerator": measures.get("numerator"),
        "denominator": measures.get("denominator"),
        "expression": expression,
        "uses": uses or (),
        "window": window,
        "grains": GRAINS if grains is None else grains,
        "dimensions": dimensions or (),
        "filters": filters or (),
        "description": text("description") or "",
        "owner": text("owner"),
        "freshness_slo": slo,
    }
    for name, problem in _shape_problems(values):
        if name not in unreadable:
            reader.problem(items[name].line if name in items else start, problem)
            unreadable.add(name)
    if len(problems) > before:
        return None
    definition = MetricDefinition(**values)
    lines = {name: item.line for name, item in items.items()}
    return _Loaded(definition, path, {**lines, "": start})


@dataclass(slots=True)
class _ColumnChecker:
    """Checks names and SQL against the explore's columns (skipped if the explore is unknown)."""

    reader: Reader
    explore: str | None
    columns: ExploreColumns | None

    def check_name(self, name: str, node: Node, what: str) -> bool:
        if self.columns is None:
            return True
        folded = {c.lower() for c in self.columns}
        if name.lower() in folded:
            return True
        hint = suggest(name, self.columns, list_all=False)
        self.reader.problem(
            node.line, f"{what}: unknown column '{name}' in explore '{self.explore}'{hint}"
        )
        return False

    def check_sql(self, sql: str, node: Node, what: str, unreadable: set[str], key: str) -> None:
        try:
            tree = parse_expression(sql)
        except MetricSqlError as exc:
            self.reader.problem(node.line, f"{what}: {exc}")
            unreadable.add(key)
            return
        for name in column_names(tree):
            if not self.check_name(name, node, what):
                unreadable.add(key)


def _read_measure(
    reader: Reader, node: Node, name: str, checker: _ColumnChecker, unreadable: set[str]
) -> Measure | None:
    items = reader.mapping(node, name)
    if items is None:
        unreadable.add(name)
        return None
    reader.check_keys(items, _MEASURE_KEYS, {})
    agg = reader.text(items.get("agg"), f"{name}.agg")
    if agg is None:
        if "agg" not in items:
            reader.problem(node.line, f"{name} needs an agg (one of {', '.join(AGGS)})")
        unreadable.add(name)
        return None
    if agg not in AGGS:
        reader.problem(items["agg"].line, f"{name}.agg '{agg}' is not one of {', '.join(AGGS)}")
        unreadable.add(name)
        return None
    expr = reader.text(items.get("expr"), f"{name}.expr")
    if expr is None and "expr" in items:
        unreadable.add(name)
        return None
    if expr is not None:
        checker.check_sql(expr, items["expr"], f"{name}.expr", unreadable, name)
    return Measure(agg, expr)


def _check_expression(
    reader: Reader, node: Node, sql: str, uses: tuple[str, ...], unreadable: set[str]
) -> None:
    try:
        tree = parse_expression(sql)
    except MetricSqlError as exc:
        reader.problem(node.line, f"expression: {exc}")
        unreadable.add("expression")
        return
    used = column_names(tree)
    for name in used:
        if name not in uses:
            reader.problem(node.line, f"expression: '{name}' is not in uses{suggest(name, uses)}")
            unreadable.add("expression")
    for name in uses:
        if name not in used:
            reader.problem(node.line, f"expression does not use '{name}' (listed in uses)")
            unreadable.add("expression")


def _texts(
    reader: Reader, node: Node | None, name: str, unreadable: set[str]
) -> tuple[str, ...] | None:
    if node is None:
        return None
    if not isinstance(node.value, list):
        reader.problem(node.line, f"{name} must be a list")
        unreadable.add(name)
        return None
    values = [reader.text(item, name) for item in node.value]
    if any(v is None for v in values):
        unreadable.add(name)
        return None
    return tuple(v for v in values if v is not None)


def _with_nodes(values: tuple[str, ...] | None, node: Node | None) -> list[tuple[str, Node]]:
    """Each value ``_texts`` read with its own node (and line)."""
    if values is None or node is None or not isinstance(node.value, list):
        return []
    return list(zip(values, node.value, strict=True))


def _integer(reader: Reader, node: Node | None, name: str, unreadable: set[str]) -> int | None:
    if node is None:
        return None
    if type(node.value) is not int:
        reader.problem(node.line, f"{name} must be a whole number, not {node.value!r}")
        unreadable.add(name)
        return None
    return node.value


def _duration(reader: Reader, node: Node | None, unreadable: set[str]) -> dt.timedelta | None:
    if node is None:
        return None
    match = _DURATION_RE.fullmatch(node.value) if isinstance(node.value, str) else None
    if match is None:
        reader.problem(node.line, f"freshness_slo must look like 30m, 6h or 2d, not {node.value!r}")
        unreadable.add("freshness_slo")
        return None
    return dt.timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


def _check_derived(
    loaded: Mapping[str, _Loaded], broken: Collection[str], problems: list[ProjectError]
) -> None:
    """What only the set of metrics can tell: a derived metric's uses exist, allow its grains
    and dimensions, and form no cycle."""
    for key, item in loaded.items():
        metric = item.definition
        reader = Reader(item.path, problems)
        uses_line = item.lines.get("uses")
        for use in metric.uses:
            used = loaded.get(use)
            if used is None:
                if use not in broken:
                    hint = suggest(use, [k for k in loaded if k != key], list_all=False)
                    reader.problem(uses_line, f"uses: unknown metric '{use}'{hint}")
                continue
            for name, what in (("grains", "grain"), ("dimensions", "dimension")):
                allowed = getattr(used.definition, name)
                for value in getattr(metric, name):
                    if value not in allowed:
                        line = item.lines.get(name, item.lines[""])
                        reader.problem(line, f"{what} '{value}' is not allowed by '{use}'")
    reported: set[frozenset[str]] = set()
    for key in loaded:
        cycle = _cycle_from(key, loaded)
        if cycle is not None and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            item = loaded[key]
            Reader(item.path, problems).problem(
                item.lines.get("uses"), f"derived metrics form a cycle: {' -> '.join(cycle)}"
            )


def _cycle_from(start: str, loaded: Mapping[str, _Loaded]) -> list[str] | None:
    """The cycle through ``start`` (``[start, ..., start]``), if its uses lead back to it."""
    path = [start]
    seen: set[str] = set()

    def visit(key: str) -> list[str] | None:
        for use in loaded[key].definition.uses if key in loaded else ():
            if use == start:
                return [*path, start]
            if use in seen or use not in loaded:
                continue
            seen.add(use)
            path.append(use)
            found = visit(use)
            if found is not None:
                return found
            path.pop()
        return None

    return visit(start)
