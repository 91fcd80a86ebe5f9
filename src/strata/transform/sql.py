"""A model's SQL: parse its one query, find what it reads, and lint silver models.

Dependencies come from the SQL itself, never from a hand-kept list. Every table the query
reads is one of:

    bronze.<namespace>.<table>                 a bronze source (``SourceRef``)
    silver.<model> | gold.<model> | <model>    another model

Names are resolved with sqlglot's scope analysis, so a CTE is local and never a dependency,
even when it shadows a model's name. Identifiers are compared in lower case because DuckDB
resolves them case-insensitively, quoted or not; the tree itself keeps the author's spelling
(output column names keep their case).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, cast, get_args

import sqlglot
from sqlglot import exp
from sqlglot.dialects import duckdb as _duckdb_dialect  # noqa: F401 - loaded once, up front
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

from strata.core.identifiers import NAME_RULE, is_valid_name
from strata.transform.config import Layer
from strata.transform.errors import ModelSqlError, SilverRuleError

DIALECT: Final = "duckdb"
BRONZE: Final = "bronze"
MODEL_SCHEMAS: Final = frozenset(get_args(Layer))
USE_BRONZE: Final = "use bronze.<namespace>.<table>"

# Table functions that make rows without reading anything (range(), generate_series()).
_ROW_GENERATORS: Final = (exp.GenerateSeries, exp.ExplodingGenerateSeries)
# DuckDB aggregates that sqlglot parses as anonymous functions; the rest are exp.AggFunc.
_ANONYMOUS_AGGREGATES: Final = frozenset(
    {
        "arbitrary", "arg_max_null", "arg_min_null", "bitstring_agg", "entropy", "favg",
        "fsum", "geomean", "geometric_mean", "histogram", "kahan_sum", "list_agg", "mad",
        "mean", "product", "reservoir_quantile", "sem", "sumkahan", "weighted_avg",
    }
)  # fmt: skip
# Characters a table name only has when DuckDB would read it as a file ('x.parquet', 's3://').
_PATH_CHARS: Final = re.compile(r"[./\\:*?]")
_TOKEN_REPR: Final = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+.*?>")


@dataclass(frozen=True, order=True, slots=True)
class SourceRef:
    """A bronze table, read in SQL as ``bronze.<namespace>.<table>``."""

    namespace: str
    table: str

    def __str__(self) -> str:
        return f"{BRONZE}.{self.namespace}.{self.table}"


Reference = str | SourceRef  # a model name, or a bronze table


@dataclass(frozen=True, slots=True)
class ModelSql:
    """One parsed model: its query tree and everything it reads."""

    name: str
    layer: Layer
    tree: exp.Query
    model_refs: frozenset[str]
    source_refs: frozenset[SourceRef]


def parse_model(name: str, layer: Layer, sql: str) -> ModelSql:
    """Parse ``sql`` (DuckDB) as the model ``name``; raise ``ModelSqlError`` unless it is one
    read-only query over models and bronze tables."""
    if not is_valid_name(name):
        raise ModelSqlError(name, f"a model name {NAME_RULE}")
    if layer not in MODEL_SCHEMAS:
        raise ModelSqlError(name, f"layer '{layer}' is not one of silver, gold")
    tree = _parse_query(name, sql)
    models: set[str] = set()
    sources: set[SourceRef] = set()
    for _, ref in find_references(name, tree):
        if isinstance(ref, SourceRef):
            sources.add(ref)
        else:
            models.add(ref)
    return ModelSql(name, layer, tree, frozenset(models), frozenset(sources))


def find_references(model: str, tree: exp.Expr) -> list[tuple[exp.Table, Reference]]:
    """Every table node in ``tree`` that reads a model or bronze table, with what it reads
    (in tree order). Engines rewrite exactly these nodes to physical tables."""
    folded = normalize_identifiers(tree.copy(), dialect=DIALECT)
    # Folding only renames identifiers, so walking both trees in step pairs up their nodes.
    original = {id(f): o for f, o in zip(folded.walk(bfs=False), tree.walk(bfs=False), strict=True)}
    try:
        scopes = traverse_scope(folded)
    except SqlglotError as exc:
        raise ModelSqlError(model, f"cannot resolve the tables it reads: {exc}") from exc
    cte_uses = {
        id(node)
        for scope in scopes
        for node, source in scope.selected_sources.values()
        if isinstance(node, exp.Table) and isinstance(source, Scope)
    }
    found: list[tuple[exp.Table, Reference]] = []
    for table in folded.find_all(exp.Table, bfs=False):
        if id(table) in cte_uses:
            continue
        ref = _resolve(model, table)
        if ref is not None:
            # Same position in an identical shape, so the original is a Table too.
            found.append((cast(exp.Table, original[id(table)]), ref))
    return found


def lint_silver(model: ModelSql) -> None:
    """Refuse a silver model that does more than cast, rename, handle nulls and filter its
    one bronze table, listing every finding at once so one edit can fix them all."""
    findings = silver_findings(model)
    if findings:
        raise SilverRuleError(model.name, findings)


def silver_findings(model: ModelSql) -> tuple[str, ...]:
    """What makes ``model`` more than a structural silver model: sources first, then each
    kind of construct in tree order."""
    ranked = [finding for node in model.tree.walk(bfs=False) for finding in _node_findings(node)]
    found = [
        *_source_findings(model),
        *(text for _, text in sorted(ranked, key=lambda pair: pair[0])),  # stable: tree order
        *_subquery_findings(model.tree),
    ]
    return tuple(dict.fromkeys(found))  # a repeated construct is reported once


# -- parsing -----------------------------------------------------------------------------


def _parse_query(model: str, sql: str) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as exc:
        raise ModelSqlError(model, f"SQL does not parse: {_describe(exc)}") from exc
    except SqlglotError as exc:  # TokenError (an unclosed quote) has no position
        raise ModelSqlError(model, f"SQL does not parse: {exc}") from exc
    if not statements:
        raise ModelSqlError(model, "SQL is empty; a model is one SELECT query")
    if len(statements) > 1:
        raise ModelSqlError(
            model, f"SQL has {len(statements)} statements; a model is exactly one SELECT query"
        )
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise ModelSqlError(model, f"SQL must be a SELECT query, not {_kind(tree)}")
    # Data-modifying CTEs and SELECT ... INTO would write while the model is being read.
    writer = tree.find(exp.DDL, exp.DML, exp.Command, exp.Into)
    if writer is not None:
        raise ModelSqlError(model, f"SQL must only read, but it has {_kind(writer)}")
    return tree


def _describe(exc: ParseError) -> str:
    if not exc.errors:
        return str(exc)
    first = exc.errors[0]
    text = _TOKEN_REPR.sub(r"'\1'", str(first.get("description") or "syntax error"))
    line, col = first.get("line"), first.get("col")
    return f"{text} at line {line}, column {col}" if line else text


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):  # sqlglot's fallback keeps the keyword as `this`
        return str(node.this).upper()
    return "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()


def _resolve(model: str, table: exp.Table) -> Reference | None:
    """What one (identifier-folded, non-CTE) table node reads."""
    if isinstance(table.this, exp.Func):
        if isinstance(table.this, _ROW_GENERATORS):
            return None
        func = table.this
        name = func.name if isinstance(func, exp.Anonymous) else func.sql_name()
        raise ModelSqlError(model, f"reads files directly with {name.lower()}(); {USE_BRONZE}")
    parts = [part.name for part in table.parts]
    dotted = ".".join(parts)
    if len(parts) == 1 and _PATH_CHARS.search(parts[0]):
        raise ModelSqlError(model, f"reads files directly ('{parts[0]}'); {USE_BRONZE}")
    if parts[0] == BRONZE:
        if len(parts) != 3:
            raise ModelSqlError(model, f"reads '{dotted}'; {USE_BRONZE}")
        _check_names(model, dotted, parts[1:])
        return SourceRef(parts[1], parts[2])
    if len(parts) == 1 or (len(parts) == 2 and parts[0] in MODEL_SCHEMAS):
        _check_names(model, dotted, parts[-1:])
        return parts[-1]
    raise ModelSqlError(
        model,
        f"reads '{dotted}'; models read bronze.<namespace>.<table>, silver.<model>, "
        "gold.<model> or <model>",
    )


def _check_names(model: str, dotted: str, names: list[str]) -> None:
    for name in names:
        if not is_valid_name(name):
            raise ModelSqlError(model, f"reads '{dotted}', but '{name}' is not a valid name")


# -- silver lint -------------------------------------------------------------------------


def _source_findings(model: ModelSql) -> Iterator[str]:
    for ref in sorted(model.model_refs):
        yield f"model reference: {ref} (silver models read bronze tables only)"
    reads = [*sorted(str(s) for s in model.source_refs), *sorted(model.model_refs)]
    if len(reads) > 1:
        yield f"more than one source: {', '.join(reads)}"
    if not reads:
        yield "no source: a silver model reads exactly one bronze table"


def _node_findings(node: exp.Expr) -> Iterator[tuple[int, str]]:
    """(rank, finding) for one node; the rank groups findings by kind in the message."""
    if isinstance(node, exp.Join):
        if _snippet(node).startswith(","):
            yield 0, f"join: comma join with {_snippet(node.this)}"
        else:
            yield 0, f"join: {_snippet(node)}"
    elif isinstance(node, exp.SetOperation):
        suffix = "" if node.args.get("distinct") else " ALL"
        yield 1, f"set operation: {node.key.upper()}{suffix}"
    elif _is_aggregate(node) and node.find_ancestor(exp.Window, exp.Having, exp.Pivot) is None:
        yield 2, f"aggregate: {_snippet(node)}"  # else the enclosing construct is reported
    elif isinstance(node, exp.Group | exp.Having):
        yield 2, f"aggregate: {_snippet(node)}"
    elif isinstance(node, exp.Window):
        yield 3, f"window function: {_snippet(node)}"
    elif isinstance(node, exp.Distinct) and isinstance(node.parent, exp.Select):
        yield 4, f"distinct: {_snippet(node)} (Strata dedupes silver by primary key)"
    elif isinstance(node, exp.Pivot):
        yield 5, f"pivot: {'UNPIVOT' if node.args.get('unpivot') else 'PIVOT'}"
    elif isinstance(node, exp.Explode | exp.Unnest) and not isinstance(node.parent, exp.Join):
        yield 6, f"row expansion: {_snippet(node)}"
    elif isinstance(node, exp.Limit | exp.Offset | exp.TableSample):
        yield 7, f"row limit: {_snippet(node)}"


def _is_aggregate(node: exp.Expr) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() in _ANONYMOUS_AGGREGATES


def _subquery_findings(tree: exp.Query) -> Iterator[str]:
    """Subqueries in expressions (IN, EXISTS, scalar) that read a table: a hidden join."""
    for scope in traverse_scope(tree):
        if scope.scope_type != ScopeType.SUBQUERY:
            continue
        for table in scope.expression.find_all(exp.Table):
            yield f"subquery reads {exp.table_name(table)}"


def _snippet(node: exp.Expr, limit: int = 80) -> str:
    text = " ".join(node.sql(dialect=DIALECT).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
