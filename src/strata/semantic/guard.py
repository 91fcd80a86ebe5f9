"""The query API's first tenant wall: vet one read-only DuckDB query before it runs.

``guard_query`` accepts a tenant's SQL only if it is exactly one query whose every node is on
an allowlist, and returns DuckDB SQL regenerated from the vetted tree: exposed tables
rewritten to quoted ``"layer"."model"`` names, the result capped at ``max_rows + 1`` rows.

Allowlist, not denylist: every node must be exactly (not by subclass) a class in
``ALLOWED_SYNTAX`` or ``ALLOWED_FUNCTIONS``, or an ``exp.Anonymous`` named in
``ALLOWED_FUNCTION_NAMES``. Statements, sqlglot's
``exp.Command`` fallback, file readers, settings, catalog functions and node types a later
sqlglot adds are all refused by default.

Table names are folded like DuckDB folds them: ASCII letters only, quoted or not. A bare name
is a CTE only where DuckDB is sure to see that CTE (an enclosing WITH, or an earlier CTE of
the same WITH); everything else must be an exposed table and is rewritten to its qualified
name, so DuckDB never resolves an unqualified name to a catalog table or a replacement scan.

Pure (no I/O, no DuckDB); parameter values are never interpolated. The tenant's DuckDB
sandbox is a second, independent wall, but this one must hold alone.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from strata.core.errors import Terminal

DIALECT: Final = "duckdb"
MAX_SQL_CHARS: Final = 100_000

# Query structure and operators. Window frames, FILTER, WITHIN GROUP, ROLLUP and the like
# only shape what is read; none of them can reach a file, a setting or the catalog.
ALLOWED_SYNTAX: Final[frozenset[type[exp.Expr]]] = frozenset({
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Values, exp.Subquery, exp.With,
    exp.CTE, exp.From, exp.Join, exp.Lateral, exp.Where, exp.Group, exp.Rollup, exp.Cube,
    exp.GroupingSets, exp.Having, exp.Qualify, exp.Order, exp.Ordered, exp.Limit, exp.Offset,
    exp.Distinct, exp.Window, exp.WindowSpec, exp.Filter, exp.WithinGroup, exp.IgnoreNulls,
    exp.RespectNulls, exp.Alias, exp.TableAlias, exp.Table, exp.Column, exp.Identifier,
    exp.Star, exp.Literal, exp.RawString, exp.Null, exp.Boolean, exp.Var, exp.Interval,
    exp.DataType, exp.DataTypeParam, exp.ColumnDef, exp.Placeholder, exp.Tuple, exp.Paren,
    exp.Array, exp.Struct, exp.PropertyEQ, exp.Bracket, exp.Slice, exp.Dot,
    exp.And, exp.Or, exp.Not, exp.Neg, exp.Case, exp.If, exp.Cast, exp.TryCast,
    exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.Between, exp.In, exp.Is, exp.Like, exp.ILike, exp.Escape, exp.Any, exp.All,
    exp.Exists, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.DPipe,
})  # fmt: skip

# Functions sqlglot parses into classes (so `range`, `read_csv`, `repeat` are absent by
# design: they read files or can allocate without bound). Grouped: math, string, date/time,
# conditional, aggregate, window, list/struct.
ALLOWED_FUNCTIONS: Final[frozenset[type[exp.Expr]]] = frozenset({
    exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Ln, exp.Log, exp.Exp, exp.Sqrt, exp.Cbrt,
    exp.Pow, exp.Sign, exp.Greatest, exp.Least, exp.Trunc, exp.IsNan, exp.IsInf,
    exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.Left, exp.Right, exp.Concat,
    exp.ConcatWs, exp.Trim, exp.Replace, exp.SplitPart, exp.StartsWith, exp.EndsWith,
    exp.Contains, exp.StrPosition, exp.Reverse, exp.RegexpLike, exp.RegexpReplace,
    exp.RegexpExtract, exp.RegexpFullMatch, exp.Ascii, exp.Chr, exp.Translate,
    exp.TimestampTrunc, exp.DateTrunc, exp.Extract, exp.TimeToStr, exp.StrToTime,
    exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime, exp.DateDiff, exp.DateAdd,
    exp.DateSub, exp.DateFromParts, exp.TimestampFromParts, exp.TimeToUnix, exp.UnixToTime,
    exp.Year, exp.Month, exp.Day, exp.Hour, exp.Minute, exp.Second, exp.DayOfWeek,
    exp.Dayname, exp.Monthname, exp.Week, exp.Quarter, exp.LastDay, exp.DateBin,
    exp.Coalesce, exp.Nullif,
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Median, exp.Mode, exp.Quantile,
    exp.PercentileCont, exp.PercentileDisc, exp.ApproxDistinct, exp.ApproxQuantile,
    exp.Stddev, exp.StddevSamp, exp.StddevPop, exp.Variance, exp.VariancePop, exp.Corr,
    exp.CovarPop, exp.CovarSamp, exp.GroupConcat, exp.LogicalAnd, exp.LogicalOr, exp.ArgMin,
    exp.ArgMax, exp.AnyValue, exp.First, exp.Last, exp.CountIf, exp.ArrayAgg, exp.Kurtosis,
    exp.Skewness,
    exp.RowNumber, exp.Rank, exp.DenseRank, exp.Lag, exp.Lead, exp.Ntile, exp.FirstValue,
    exp.LastValue, exp.NthValue, exp.PercentRank, exp.CumeDist,
    exp.ArrayContains, exp.ArraySize, exp.StructExtract,
})  # fmt: skip

# DuckDB functions sqlglot leaves as exp.Anonymous, by lower-case (ASCII) name.
ALLOWED_FUNCTION_NAMES: Final = frozenset({
    "now", "date_part", "datepart", "date_sub", "datesub", "age", "iff", "mean", "strlen",
    "product", "fsum", "favg", "geomean", "weighted_avg", "entropy", "list_extract",
})  # fmt: skip

_TABLE_ARGS: Final = frozenset({"this", "db", "catalog", "alias"})
_FOLD: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_TOKEN_REPR: Final = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+.*?>")
_CALL_NAME: Final = re.compile(r"\s*([\w.\"]+)\s*\(")


class QueryRefused(Terminal):
    """The guard refused a query; ``str()`` and ``reason`` say what was refused, in one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class GuardedQuery:
    """A vetted query: DuckDB SQL to run (binding ``parameters`` by name), returning at most
    ``max_rows + 1`` rows so the caller can tell the result was truncated."""

    sql: str
    tables: tuple[str, ...]  # qualified exposed tables it reads, sorted
    parameters: tuple[str, ...]  # named parameters it uses, sorted


def guard_query(
    sql: str,
    exposed: Collection[str],
    *,
    parameters: Mapping[str, object] = {},  # never mutated
    max_rows: int,
) -> GuardedQuery:
    """Vet ``sql`` against the ``exposed`` tables (``"layer.model"``) and ``parameters``;
    raise ``QueryRefused`` naming the first thing that is not allowed.

    ``ValueError`` means the caller (not the tenant) passed a bad ``exposed`` or ``max_rows``.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ValueError(f"max_rows must be an int >= 0, not {max_rows!r}")
    catalog = _catalog(exposed)
    tree = _parse(sql)
    tables, used = _vet(tree, catalog)
    _check_parameters(used, parameters)
    wrapped = (
        exp.select(exp.Star())
        .from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("q"))))
        .limit(max_rows + 1)
    )
    out = _generate(wrapped)
    # What runs is sqlglot's regeneration, not the tree vetted above: a generator that
    # transpiles a node into other SQL must not smuggle anything past the wall.
    again = _parse(out)
    if _vet(again, catalog) != (tables, used) or _generate(again) != out:
        raise QueryRefused("query cannot be regenerated safely; simplify it")
    return GuardedQuery(out, tuple(sorted(tables)), tuple(sorted(used)))


# -- parsing -----------------------------------------------------------------------------


def _catalog(exposed: Collection[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """Folded (layer, model) -> the caller's spelling of each exposed table."""
    if isinstance(exposed, str):
        raise ValueError("exposed must be a collection of 'layer.model' names, not one str")
    catalog: dict[tuple[str, str], tuple[str, str]] = {}
    for name in exposed:
        parts = name.split(".")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"exposed table {name!r} is not 'layer.model'")
        catalog.setdefault((_fold(parts[0]), _fold(parts[1])), (parts[0], parts[1]))
    return catalog


def _parse(sql: str) -> exp.Expr:
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"SQL is {len(sql)} characters; the limit is {MAX_SQL_CHARS}")
    try:
        parsed = sqlglot.parse(sql, read=DIALECT)
        # A comment after the last `;` comes back as an exp.Semicolon "statement".
        statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as exc:
        raise QueryRefused(f"SQL does not parse: {_describe(exc)}") from None
    except SqlglotError as exc:  # TokenError (an unclosed quote) has no position
        raise QueryRefused(f"SQL does not parse: {_one_line(str(exc))}") from None
    except RecursionError:
        raise QueryRefused("SQL is nested too deeply") from None
    if not statements:
        raise QueryRefused("SQL is empty; send one SELECT query")
    if len(statements) > 1:
        raise QueryRefused(f"SQL has {len(statements)} statements; send exactly one query")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.SetOperation | exp.Values):
        raise QueryRefused(f"only a read-only query (SELECT ...) is allowed, not {_kind(tree)}")
    return tree


def _generate(tree: exp.Expr) -> str:
    try:
        # Comments are dropped: they carry nothing DuckDB needs, only room for surprises.
        return tree.sql(dialect=DIALECT, comments=False)
    except RecursionError:
        raise QueryRefused("SQL is nested too deeply") from None
    except SqlglotError as exc:
        raise QueryRefused(f"query cannot be regenerated: {_one_line(str(exc))}") from None


def _describe(exc: ParseError) -> str:
    """sqlglot's first error without its echo of the SQL (which spans lines, with ANSI)."""
    if not exc.errors:
        return _one_line(str(exc))
    first = exc.errors[0]
    text = _TOKEN_REPR.sub(r"'\1'", str(first.get("description") or "syntax error"))
    line, col = first.get("line"), first.get("col")
    return f"{text} at line {line}, column {col}" if line else text


# -- vetting -----------------------------------------------------------------------------


def _vet(
    tree: exp.Expr, catalog: dict[tuple[str, str], tuple[str, str]]
) -> tuple[frozenset[str], frozenset[str]]:
    """Check every node of ``tree``, rewrite its exposed tables in place, and return the
    qualified tables it reads and the parameter names it uses."""
    tables: set[str] = set()
    used: set[str] = set()
    rewrites: list[tuple[exp.Table, exp.Table]] = []
    for node in tree.walk(bfs=False):  # iterative, parents before children
        kind = type(node)
        if kind is exp.Anonymous:
            if not (node.name.isascii() and node.name.lower() in ALLOWED_FUNCTION_NAMES):
                raise QueryRefused(f"function '{node.name}' is not allowed")
        elif kind in ALLOWED_FUNCTIONS:
            continue
        elif kind not in ALLOWED_SYNTAX:
            what = (
                f"function '{function_name(node)}'" if isinstance(node, exp.Func) else _kind(node)
            )
            raise QueryRefused(f"{what} is not allowed")
        elif isinstance(node, exp.Table):
            target = _resolve(node, catalog)
            if target is not None:
                layer, model = target
                tables.add(f"{layer}.{model}")
                new = exp.Table(
                    this=exp.to_identifier(model, quoted=True),
                    db=exp.to_identifier(layer, quoted=True),
                    alias=node.args.get("alias"),
                )
                rewrites.append((node, new))
        elif isinstance(node, exp.Placeholder):
            used.add(_parameter_name(node))
        elif isinstance(node, exp.With) and node.args.get("recursive"):
            raise QueryRefused("WITH RECURSIVE is not allowed")
        elif isinstance(node, exp.DataType) and node.this == exp.DataType.Type.USERDEFINED:
            raise QueryRefused(f"type '{node.args.get('kind')}' is not allowed")
        elif isinstance(node, exp.Dot) and not isinstance(node.expression, exp.Identifier):
            # `x.lower()` or `main.lower()`: method calls and schema-qualified functions
            # resolve through DuckDB's catalog, not the allowlist.
            raise QueryRefused(f"qualified call '{snippet(node)}' is not allowed")
        elif isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
            if isinstance(node.this, exp.Func):  # `, LATERAL read_csv(...)`: a table function
                raise QueryRefused(f"table function '{function_name(node.this)}' is not allowed")
            raise QueryRefused(f"'{snippet(node)}' is not allowed")
    for old, new in rewrites:
        old.replace(new)
    return frozenset(tables), frozenset(used)


def _resolve(
    table: exp.Table, catalog: dict[tuple[str, str], tuple[str, str]]
) -> tuple[str, str] | None:
    """The exposed (layer, model) a table node reads, or None for a visible CTE."""
    if isinstance(table.this, exp.Func):
        raise QueryRefused(f"table function '{function_name(table.this)}' is not allowed")
    extra = sorted(k for k, v in table.args.items() if v and k not in _TABLE_ARGS)
    if extra:
        raise QueryRefused(f"{extra[0].upper()} on table '{snippet(table)}' is not allowed")
    parts = [table.args.get(k) for k in ("catalog", "db", "this")]
    if not all(p is None or isinstance(p, exp.Identifier) for p in parts):
        raise QueryRefused(f"'{snippet(table)}' is not a table name")
    catalog_part, db, this = (p.name if p is not None else None for p in parts)
    dotted = ".".join(p for p in (catalog_part, db, this) if p is not None)
    if catalog_part is not None:
        raise QueryRefused(f"catalog-qualified table '{dotted}' is not allowed")
    model = _fold(this or "")
    if db is None:
        if model in _visible_ctes(table):
            return None
        matches = sorted(v for (_, m), v in catalog.items() if m == model)
        if len(matches) > 1:
            names = ", ".join(".".join(v) for v in matches)
            raise QueryRefused(f"table '{dotted}' is ambiguous; use one of {names}")
        if matches:
            return matches[0]
    elif (found := catalog.get((_fold(db), model))) is not None:
        return found
    listed = ", ".join(sorted(".".join(v) for v in catalog.values())) or "none"
    raise QueryRefused(f"table '{dotted}' is not exposed; exposed: {listed}")


def _visible_ctes(table: exp.Table) -> set[str]:
    """Folded names of the CTEs DuckDB certainly resolves at ``table``: those of enclosing
    WITHs, and within one WITH only the CTEs before the one being defined (DuckDB reads a
    later or self-named CTE as a catalog table; RECURSIVE is refused)."""
    names: set[str] = set()
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            for cte in parent.expressions:
                if cte is child:
                    break
                names.add(_fold(cte.alias))
        elif (with_ := parent.args.get("with_")) is not None and with_ is not child:
            names.update(_fold(cte.alias) for cte in with_.expressions)
        child, parent = parent, parent.parent
    return names


def _parameter_name(node: exp.Placeholder) -> str:
    name = node.args.get("this")  # None for `?` (whose .name sqlglot reports as "?")
    if not isinstance(name, str) or not name or name.isdigit():
        shown = f"${name}" if name else "?"
        raise QueryRefused(f"positional parameter '{shown}' is not allowed; use $name")
    return name


def _check_parameters(used: Collection[str], supplied: Mapping[str, object]) -> None:
    missing = sorted(set(used) - set(supplied))
    if missing:
        raise QueryRefused(f"parameters not supplied: {', '.join(missing)}")
    unused = sorted(set(supplied) - set(used))
    if unused:
        raise QueryRefused(f"parameters supplied but not used: {', '.join(unused)}")
    for name in sorted(supplied):
        # Exact types: a str or int subclass could bind as something else.
        if type(supplied[name]) not in (type(None), bool, int, float, str):
            kind = type(supplied[name]).__name__
            raise QueryRefused(f"parameter '{name}' is a {kind}; use null, bool, number or str")


# -- naming ------------------------------------------------------------------------------


def _fold(name: str) -> str:
    """DuckDB's identifier folding: ASCII letters only (U+212A KELVIN SIGN is not 'k')."""
    return name.translate(_FOLD)


def function_name(node: exp.Expr) -> str:
    """The function name as DuckDB would see it (`range`, not sqlglot's GENERATE_SERIES)."""
    if isinstance(node, exp.Anonymous):
        return node.name
    match = _CALL_NAME.match(snippet(node, limit=200))
    return (match.group(1) if match else node.key).lower()


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):  # sqlglot's fallback keeps the keyword as `this`
        return str(node.this).upper()
    if isinstance(node, exp.Column):  # a lone keyword, e.g. CHECKPOINT
        return node.name.upper()
    return "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()


def snippet(node: exp.Expr, limit: int = 80) -> str:
    """``node`` as one line of SQL, cut to ``limit`` characters, for error messages."""
    try:
        text = _one_line(node.sql(dialect=DIALECT))
    except (SqlglotError, RecursionError):
        text = node.key
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())
