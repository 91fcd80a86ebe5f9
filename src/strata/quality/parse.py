"""Reading ``checks:`` from YAML: a model config's ``checks:`` list, or ``checks/*.yml``.

A check is one-key mapping, the key naming its kind, in a form dbt and SodaCL users know::

    checks:
      - not_null: worker_id
      - unique: [company_id, worker_id]
      - accepted_values: {column: status, values: [active, inactive], severity: warn}
      - relationships: {column: worker_id, to: workers, field: worker_id}
      - format: {column: email, type: email}          # email | phone | uuid, or regex: "^..."
      - range: {column: score, min: 0, max: 100}
      - expression: "end_date IS NULL OR end_date >= start_date"
      - row_count: {min: 1}
      - freshness: {column: updated_at, warn_after: 24h, error_after: 48h}
      - duplicate_count: {columns: [email], max: 0}
      - null_rate: {column: phone, max: 0.2}
      - distinct_count: {column: status, min: 2, max: 10}
      - schema: {columns: {worker_id: VARCHAR, score: DOUBLE}, allow_extra: true}
      - row_count_drift: {window: 7, warn: 0.1, error: 0.3}
      - null_rate_drift: {column: phone, window: 7, warn: 0.1, error: 0.3}

Every check also takes ``name`` (default: kind and columns), ``severity`` (``error`` by
default; ``warn`` reports without blocking) and ``where`` (a SQL filter). A file in
``checks/`` names its model: ``model: workers`` then ``checks: [...]``.

Every problem is a ``ProjectError`` at the check's line, collected rather than raised, so
``strata validate`` lists them all. Columns are checked against the model's known output
columns where the caller knows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from strata.quality.checks import (
    CHECK_KINDS,
    FORMAT_PATTERNS,
    SEVERITIES,
    Bounds,
    Check,
    CheckKind,
    FormatName,
)
from strata.transform.config import Node, ProjectError, Reader, suggest
from strata.transform.sql import DIALECT

_COMMON: Final = ("name", "severity", "where")
_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "not_null": ("column", "max_failures"),
    "unique": ("columns", "column", "max_failures"),
    "accepted_values": ("column", "values", "max_failures"),
    "relationships": ("column", "to", "field", "max_failures"),
    "format": ("column", "type", "regex", "max_failures"),
    "range": ("column", "min", "max", "max_failures"),
    "expression": ("sql", "max_failures"),
    "row_count": ("min", "max"),
    "freshness": ("column", "warn_after", "error_after"),
    "duplicate_count": ("columns", "column", "max"),
    "null_rate": ("column", "max"),
    "distinct_count": ("column", "min", "max"),
    "schema": ("columns", "allow_extra"),
    "row_count_drift": ("window", "warn", "error", "min_history"),
    "null_rate_drift": ("column", "window", "warn", "error", "min_history"),
}
# The key a short form (``- not_null: worker_id``) fills.
_SHORT: Final[Mapping[str, str]] = {
    "not_null": "column",
    "unique": "columns",
    "accepted_values": "column",
    "format": "column",
    "null_rate": "column",
    "distinct_count": "column",
    "duplicate_count": "columns",
    "freshness": "column",
    "expression": "sql",
    "null_rate_drift": "column",
}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FILE_KEYS: Final = ("model", "checks")

# model name -> its qualified table (``silver.workers``), or None if there is no such model.
ResolveModel = Callable[[str], str | None]
# qualified table -> its known output columns, or None where they are not known statically.
KnownColumns = Callable[[str], Collection[str] | None]


@dataclass(frozen=True, slots=True)
class _Context:
    reader: Reader
    table: str
    resolve: ResolveModel
    columns: KnownColumns


def parse_checks(
    node: Node | None,
    table: str,
    path: str,
    problems: list[ProjectError],
    *,
    resolve: ResolveModel,
    columns: KnownColumns,
) -> list[Check]:
    """The checks in a ``checks:`` list ``node`` on ``table``; problems are appended."""
    if node is None:
        return []
    reader = Reader(path, problems)
    if not isinstance(node.value, list):
        reader.problem(node.line, "checks must be a list, one check per item")
        return []
    context = _Context(reader, table, resolve, columns)
    checks: list[Check] = []
    names: dict[str, int | None] = {}
    for item in node.value:
        check = _parse_one(context, item, len(checks))
        if check is None:
            continue
        if check.name in names:
            reader.problem(
                item.line,
                f"check '{check.name}' is declared twice on {table} (give one a different name:)",
            )
            continue
        names[check.name] = item.line
        checks.append(check)
    return checks


def parse_checks_file(
    root: Node,
    path: str,
    problems: list[ProjectError],
    *,
    resolve: ResolveModel,
    columns: KnownColumns,
) -> tuple[str | None, list[Check]]:
    """A ``checks/*.yml`` file: ``model: NAME`` and ``checks: [...]``."""
    reader = Reader(path, problems)
    items = reader.mapping(root, "a checks file")
    if items is None:
        return None, []
    reader.check_keys(items, _FILE_KEYS, {})
    if "model" not in items:
        reader.problem(root.line, "a checks file needs 'model: NAME' (the model it checks)")
        return None, []
    model = reader.name(items["model"], "model", "model")
    if model is None:
        return None, []
    table = resolve(model)
    if table is None:
        reader.problem(items["model"].line, f"no model '{model}' in this project")
        return None, []
    if "checks" not in items:
        reader.problem(root.line, "a checks file needs a 'checks:' list")
        return table, []
    return table, parse_checks(
        items["checks"], table, path, problems, resolve=resolve, columns=columns
    )


def _parse_one(context: _Context, item: Node, index: int) -> Check | None:
    reader = context.reader
    entry = reader.mapping(item, "a check")
    if entry is None:
        if isinstance(item.value, str) and item.value in CHECK_KINDS:
            reader.problem(item.line, f"'{item.value}' needs a column or settings: see the docs")
        return None
    if len(entry) != 1:
        reader.problem(
            item.line,
            "a check is a mapping with one key, its kind "
            f"(got {', '.join(sorted(entry)) or 'nothing'})",
        )
        return None
    [(kind_text, value)] = entry.items()
    # The check's line is its item's: the line of its kind, where a reader looks for it
    # (a long form's settings start on the next line).
    line = item.line
    if kind_text not in CHECK_KINDS:
        reader.problem(line, f"unknown check type '{kind_text}'{suggest(kind_text, CHECK_KINDS)}")
        return None
    kind: CheckKind = kind_text  # narrowed by the CHECK_KINDS test above
    before = len(reader.problems)
    settings = _settings(reader, kind, value, line)
    if settings is None:
        return None
    reader.check_keys(settings, (*_KEYS[kind], *_COMMON), {})
    if kind == "schema" and "where" in settings:
        reader.problem(settings["where"].line, "schema checks the table's columns: no where")
        return None
    fields: dict[str, Any] = {"kind": kind, "table": context.table}
    fields["path"], fields["line"] = reader.path, line
    _common(context, settings, fields)
    _SPECIFIC[kind](context, settings, fields, line)
    if len(reader.problems) > before:
        return None
    fields.setdefault("name", _default_name(kind, fields, index))
    return Check(**fields)


def _settings(reader: Reader, kind: str, value: Node, line: int | None) -> dict[str, Node] | None:
    if isinstance(value.value, dict):
        return value.value
    short = _SHORT.get(kind)
    if short is None:
        if value.value is None and kind in ("row_count_drift",):
            return {}
        reader.problem(line, f"{kind} takes a mapping of settings ({', '.join(_KEYS[kind])})")
        return None
    if value.value is None:
        reader.problem(line, f"{kind} needs {'columns' if short == 'columns' else 'a ' + short}")
        return None
    return {short: value}


def _common(context: _Context, settings: Mapping[str, Node], fields: dict[str, Any]) -> None:
    reader = context.reader
    if "name" in settings:
        name = reader.name(settings["name"], "name", "check")
        if name is not None:
            fields["name"] = name
    if "severity" in settings:
        text = reader.text(settings["severity"], "severity")
        if text in SEVERITIES:
            fields["severity"] = text
        elif text is not None:
            reader.problem(
                settings["severity"].line, f"severity must be warn or error, not {text!r}"
            )
    if "where" in settings:
        sql = _sql_expression(context, settings["where"], "where")
        if sql is not None:
            fields["where"] = sql


# -- per kind ------------------------------------------------------------------------------

_Specific = Callable[[_Context, Mapping[str, Node], dict[str, Any], int | None], None]


def _one_column(
    context: _Context, settings: Mapping[str, Node], fields: dict[str, Any], line: int | None
) -> None:
    node = settings.get("column")
    if node is None:
        context.reader.problem(line, f"{fields['kind']} needs a column")
        return
    column = context.reader.name(node, "column", "column")
    if column is not None and _known(context, node, column):
        fields["columns"] = (column,)


def _many_columns(
    context: _Context, settings: Mapping[str, Node], fields: dict[str, Any], line: int | None
) -> None:
    node = settings.get("columns", settings.get("column"))
    if node is None:
        context.reader.problem(line, f"{fields['kind']} needs columns")
        return
    columns = context.reader.names(node, "columns")
    if columns is None:
        return
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        context.reader.problem(node.line, f"columns: '{repeated[0]}' is listed twice")
        return
    if all(_known(context, node, c) for c in columns):
        fields["columns"] = columns


def _max_failures(context: _Context, settings: Mapping[str, Node], fields: dict[str, Any]) -> None:
    if "max_failures" in settings:
        value = _number(context.reader, settings["max_failures"], "max_failures", integer=True)
        if value is not None:
            fields["max_failures"] = int(value)


def _not_null(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    _max_failures(c, s, f)


def _unique(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _many_columns(c, s, f, line)
    _max_failures(c, s, f)


def _accepted(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    _max_failures(c, s, f)
    node = s.get("values")
    if node is None or not isinstance(node.value, list) or not node.value:
        c.reader.problem(
            line if node is None else node.line, "accepted_values needs a non-empty list of values"
        )
        return
    values = []
    for item in node.value:
        if item.value is None or isinstance(item.value, (dict, list)):
            # NULLs always pass: a null among the accepted values is a mistake.
            c.reader.problem(item.line, "accepted values must be text, numbers or booleans")
            return
        values.append(item.value)
    f["values"] = tuple(values)


def _relationships(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    _max_failures(c, s, f)
    if "to" not in s:
        c.reader.problem(line, "relationships needs 'to: MODEL' (the table the key must exist in)")
        return
    model = c.reader.name(s["to"], "to", "model")
    if model is None:
        return
    table = c.resolve(model)
    if table is None:
        c.reader.problem(s["to"].line, f"relationships: no model '{model}' in this project")
        return
    f["to_table"] = table
    field_node = s.get("field")
    to_column = (
        f.get("columns", ("",))[0]
        if field_node is None
        else c.reader.name(field_node, "field", "column")
    )
    if not to_column:
        return
    known = c.columns(table)
    if known is not None and to_column not in known:
        where = line if field_node is None else field_node.line
        c.reader.problem(
            where, f"relationships: {table} has no column '{to_column}'{suggest(to_column, known)}"
        )
        return
    f["to_column"] = to_column


def _format(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    _max_failures(c, s, f)
    if ("type" in s) == ("regex" in s):
        c.reader.problem(line, "format needs exactly one of 'type' (email, phone, uuid) or 'regex'")
        return
    if "type" in s:
        name = c.reader.text(s["type"], "type")
        if name is None or name not in FORMAT_PATTERNS:
            if name is not None:
                c.reader.problem(
                    s["type"].line, f"format type '{name}' is not one of email, phone, uuid"
                )
            return
        format_name: FormatName = name  # type: ignore[assignment]  # one of the patterns
        f["format_name"], f["pattern"] = format_name, FORMAT_PATTERNS[name]
        return
    pattern = c.reader.text(s["regex"], "regex")
    if pattern is None:
        return
    problem = _regex_problem(pattern)
    if problem is not None:
        c.reader.problem(s["regex"].line, f"regex {pattern!r} is not a valid pattern: {problem}")
        return
    f["format_name"], f["pattern"] = "regex", pattern


def _range(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    _max_failures(c, s, f)
    bounds = _bounds(c.reader, s, line, "range")
    if bounds is not None:
        f["bounds"] = bounds


def _expression(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _max_failures(c, s, f)
    if "sql" not in s:
        c.reader.problem(line, "expression needs sql: a boolean SQL expression true for good rows")
        return
    sql = _sql_expression(c, s["sql"], "expression")
    if sql is not None:
        f["sql"] = sql


def _row_count(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    bounds = _bounds(c.reader, s, line, "row_count", integer=True)
    if bounds is not None:
        f["bounds"] = bounds


def _freshness(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    warn = _duration(c.reader, s.get("warn_after"), "warn_after")
    error = _duration(c.reader, s.get("error_after"), "error_after")
    if "warn_after" not in s and "error_after" not in s:
        c.reader.problem(line, "freshness needs warn_after and/or error_after (e.g. 24h)")
    if warn is not None and error is not None and warn > error:
        c.reader.problem(s["warn_after"].line, "warn_after must not be longer than error_after")
        return
    f["warn_after_s"], f["error_after_s"] = warn, error


def _duplicates(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _many_columns(c, s, f, line)
    high = _number(c.reader, s["max"], "max", integer=True) if "max" in s else 0
    if high is not None:
        f["bounds"] = Bounds(None, high)


def _null_rate(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    if "max" not in s:
        c.reader.problem(line, "null_rate needs max: the highest share of NULLs, 0 to 1")
        return
    high = _number(c.reader, s["max"], "max", rate=True)
    if high is not None:
        f["bounds"] = Bounds(None, high)


def _distinct(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    _one_column(c, s, f, line)
    bounds = _bounds(c.reader, s, line, "distinct_count", integer=True)
    if bounds is not None:
        f["bounds"] = bounds


def _schema(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    node = s.get("columns")
    items = c.reader.mapping(node, "schema columns") if node is not None else None
    if not items:
        if node is None or items == {}:
            c.reader.problem(line, "schema needs columns: {name: TYPE, ...}")
        return
    expected: dict[str, str] = {}
    for column, type_node in items.items():
        if c.reader.name(Node(column, type_node.line), "columns", "column") is None:
            continue
        type_text = c.reader.text(type_node, f"type of {column}")
        if type_text is None:
            continue
        try:
            parsed = exp.DataType.build(type_text, dialect=DIALECT)
        except (ParseError, ValueError):
            c.reader.problem(type_node.line, f"'{type_text}' is not a SQL type")
            continue
        expected[column] = parsed.sql(dialect=DIALECT)
    f["expected_columns"] = expected
    if "allow_extra" in s:
        value = s["allow_extra"].value
        if not isinstance(value, bool):
            c.reader.problem(s["allow_extra"].line, "allow_extra must be true or false")
        else:
            f["allow_extra_columns"] = value


def _drift(c: _Context, s: Mapping[str, Node], f: dict[str, Any], line: int | None) -> None:
    if f["kind"] == "null_rate_drift":
        _one_column(c, s, f, line)
    for key, target, integer in (
        ("window", "window", True),
        ("min_history", "min_history", True),
        ("warn", "warn_change", False),
        ("error", "error_change", False),
    ):
        if key in s:
            value = _number(c.reader, s[key], key, integer=integer)
            if value is not None:
                f[target] = int(value) if integer else value
    window = f.get("window", 7)
    if window < 1 or f.get("min_history", 3) < 1:
        c.reader.problem(line, "window and min_history must be at least 1")
    elif "min_history" not in f:
        f["min_history"] = min(3, window)  # a window of 2 is judged after 2 runs, not never
    elif f["min_history"] > window:
        c.reader.problem(
            s["min_history"].line,
            f"min_history {f['min_history']} is more than the window of {window} runs",
        )
    if f.get("warn_change", 0.1) > f.get("error_change", 0.3):
        c.reader.problem(s["warn"].line if "warn" in s else line, "warn must not exceed error")


_SPECIFIC: Final[Mapping[str, _Specific]] = {
    "not_null": _not_null,
    "unique": _unique,
    "accepted_values": _accepted,
    "relationships": _relationships,
    "format": _format,
    "range": _range,
    "expression": _expression,
    "row_count": _row_count,
    "freshness": _freshness,
    "duplicate_count": _duplicates,
    "null_rate": _null_rate,
    "distinct_count": _distinct,
    "schema": _schema,
    "row_count_drift": _drift,
    "null_rate_drift": _drift,
}


# -- values --------------------------------------------------------------------------------


def _known(context: _Context, node: Node, column: str) -> bool:
    known = context.columns(context.table)
    if known is None or column in known:
        return True
    context.reader.problem(
        node.line, f"{context.table} has no column '{column}'{suggest(column, known)}"
    )
    return False


def _number(
    reader: Reader, node: Node, key: str, *, integer: bool = False, rate: bool = False
) -> float | None:
    value = node.value
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    if ok and integer and not float(value).is_integer():  # type: ignore[arg-type]
        ok = False
    if ok and rate and value > 1:  # type: ignore[operator]
        ok = False
    if not ok:
        want = (
            "a whole number >= 0"
            if integer
            else "a number from 0 to 1"
            if rate
            else "a number >= 0"
        )
        reader.problem(node.line, f"{key} must be {want}, not {value!r}")
        return None
    return float(value)  # type: ignore[arg-type]


def _bounds(
    reader: Reader,
    settings: Mapping[str, Node],
    line: int | None,
    kind: str,
    *,
    integer: bool = False,
) -> Bounds | None:
    if "min" not in settings and "max" not in settings:
        reader.problem(line, f"{kind} needs min and/or max")
        return None
    low = high = None
    bad = False
    for key in ("min", "max"):
        if key not in settings:
            continue
        node = settings[key]
        value = node.value
        if kind == "range":  # a range may be negative or fractional
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                reader.problem(node.line, f"{key} must be a number, not {value!r}")
                bad = True
                continue
            number: float | None = float(value)
        else:
            number = _number(reader, node, key, integer=integer)
        if number is None:
            bad = True
        elif key == "min":
            low = number
        else:
            high = number
    if bad:
        return None
    if low is not None and high is not None and low > high:
        reader.problem(settings["min"].line, f"{kind}: min {low:g} is greater than max {high:g}")
        return None
    return Bounds(low, high)


def _duration(reader: Reader, node: Node | None, key: str) -> float | None:
    if node is None:
        return None
    match = _DURATION.match(str(node.value)) if isinstance(node.value, str) else None
    if match is None:
        reader.problem(
            node.line, f"{key} must be a duration like 30m, 24h or 2d, not {node.value!r}"
        )
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _sql_expression(context: _Context, node: Node, key: str) -> str | None:
    text = context.reader.text(node, key)
    if text is None:
        return None
    try:
        parsed = sqlglot.parse(text, dialect=DIALECT)
    except ParseError as exc:
        context.reader.problem(node.line, f"{key} is not valid SQL: {str(exc).splitlines()[0]}")
        return None
    # A statement (SELECT, DROP, DELETE, ...) is no condition: only expressions are.
    if len(parsed) != 1 or not isinstance(parsed[0], exp.Condition):
        context.reader.problem(
            node.line, f"{key} must be one boolean SQL expression, not a statement"
        )
        return None
    tree = parsed[0]
    if _surely_not_boolean(tree):
        context.reader.problem(
            node.line,
            f"{key} must be a condition, true or false for each row (like score >= 0), "
            f"not {tree.sql(dialect=DIALECT)}",
        )
        return None
    if any(isinstance(n, (exp.Query, exp.AggFunc, exp.Window)) for n in tree.walk()):
        context.reader.problem(
            node.line, f"{key} must test one row: no subqueries, aggregates or windows"
        )
        return None
    known = context.columns(context.table)
    for column in tree.find_all(exp.Column):
        if known is not None and column.name not in known:
            context.reader.problem(
                node.line,
                f"{key}: {context.table} has no column "
                f"'{column.name}'{suggest(column.name, known)}",
            )
            return None
    return tree.sql(dialect=DIALECT)


def _surely_not_boolean(tree: exp.Expr) -> bool:
    """A literal or arithmetic at the top (``score + 1``, ``'x'``): never a condition.
    Columns, functions and casts may be boolean; DuckDB judges those when checks run."""
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Literal):
        return True
    return isinstance(tree, exp.Binary) and not isinstance(tree, (exp.Predicate, exp.Connector))


def _regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is no valid regex for DuckDB (RE2: no lookaround, no backreferences),
    or ``None``."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    with duckdb.connect() as con:
        try:
            con.execute("SELECT regexp_full_match('', ?)", [pattern])
        except duckdb.Error as exc:
            return str(exc).split("\n", 1)[0].removeprefix("Invalid Input Error: ")
    return None


def _default_name(kind: CheckKind, fields: Mapping[str, Any], index: int) -> str:
    columns = fields.get("columns", ())
    if kind == "relationships" and fields.get("to_table"):
        return f"relationships_{columns[0]}__{str(fields['to_table']).replace('.', '_')}"
    if columns:
        return "_".join((kind, *columns))
    if kind == "expression":
        return f"expression_{index + 1}"
    return kind
