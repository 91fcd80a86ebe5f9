"""An explore as one view: its gold fact LEFT JOIN each dimension, built as a sqlglot tree.

    SELECT f.<every fact column>, d.<dimension columns the fact lacks> ...
    FROM "gold"."<fact>" AS f
    LEFT JOIN "gold"."<dimension>" AS d
      ON f.<fact_key> = d.<dimension_key> AND f.<tenant key> = d.<tenant key>

The fact's columns come through as they are. A dimension adds its other columns: its join
keys and tenant key are left out (the join makes them equal to the fact's, or NULL when no
row matched, which the fact's own keys say better), and a name already taken by the fact
or an earlier dimension becomes ``<dimension>__<column>``. The tenant key is matched on
every join even though a tenant sandbox only holds one tenant's rows: the view must not
depend on where it runs to keep tenants apart.

Pure: the caller passes each model's columns (from the Delta schemas) and gets a query
tree back. Names compare case-insensitively, as DuckDB resolves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from sqlglot import exp

from strata.core.errors import Terminal
from strata.semantic.guard import DIALECT
from strata.transform.config import ExploreConfig

EXPLORE_SCHEMA: Final = "explore"
PREFIX_SEPARATOR: Final = "__"


class ExploreViewError(Terminal):
    """An explore cannot be built over the tables as they are (a key column is missing)."""

    def __init__(self, explore: str, reason: str) -> None:
        self.explore = explore
        self.reason = reason
        super().__init__(f"explore '{explore}' cannot be served: {reason}")


def explore_view(
    explore: ExploreConfig,
    columns: Mapping[str, Sequence[str]],
    tenant_key: str,
    *,
    schema: str = "gold",
) -> exp.Select:
    """The explore's SELECT over ``"{schema}"."<model>"`` views; ``columns`` maps each of its
    models to the table's column names, in table order."""
    fact_columns = _columns(explore, columns, explore.fact, (tenant_key,))
    fact = explore.fact
    selected: list[exp.Expr] = [_column(fact, c).as_(c, quoted=True) for c in fact_columns]
    in_fact = {c.lower() for c in fact_columns}
    taken = set(in_fact)
    query = exp.select(*selected).from_(_table(schema, fact))
    for dimension in explore.dimensions:
        keys = (*dimension.dimension_key, tenant_key)
        dimension_columns = _columns(explore, columns, dimension.model, keys)
        missing = [k for k in dimension.fact_key if k.lower() not in in_fact]
        if missing:
            raise ExploreViewError(explore.name, f"fact '{fact}' has no column '{missing[0]}'")
        skipped = {k.lower() for k in keys}
        for name in dimension_columns:
            if name.lower() in skipped:
                continue
            alias = name if name.lower() not in taken else f"{dimension.model}__{name}"
            if alias.lower() in taken:
                raise ExploreViewError(
                    explore.name, f"column '{alias}' of '{dimension.model}' is already taken"
                )
            taken.add(alias.lower())
            query = query.select(_column(dimension.model, name).as_(alias, quoted=True))
        pairs = [*zip(dimension.fact_key, dimension.dimension_key, strict=True)]
        pairs.append((tenant_key, tenant_key))
        condition = exp.and_(
            *(
                exp.EQ(this=_column(fact, f), expression=_column(dimension.model, d))
                for f, d in pairs
            )
        )
        query = query.join(_table(schema, dimension.model), on=condition, join_type="left")
    return query


def explore_view_sql(
    explore: ExploreConfig,
    columns: Mapping[str, Sequence[str]],
    tenant_key: str,
    *,
    schema: str = "gold",
) -> str:
    """``explore_view`` as DuckDB SQL."""
    return explore_view(explore, columns, tenant_key, schema=schema).sql(dialect=DIALECT)


def _columns(
    explore: ExploreConfig,
    columns: Mapping[str, Sequence[str]],
    model: str,
    required: Sequence[str],
) -> Sequence[str]:
    found = columns.get(model)
    if found is None:
        raise ExploreViewError(explore.name, f"model '{model}' has no table")
    present = {c.lower() for c in found}
    for name in required:
        if name.lower() not in present:
            raise ExploreViewError(explore.name, f"'{model}' has no column '{name}'")
    return found


def _table(schema: str, model: str) -> exp.Table:
    """``"schema"."model" AS "model"``: the alias keeps column references short and exact."""
    return exp.Table(
        this=exp.to_identifier(model, quoted=True),
        db=exp.to_identifier(schema, quoted=True),
        alias=exp.TableAlias(this=exp.to_identifier(model, quoted=True)),
    )


def _column(table: str, name: str) -> exp.Column:
    return exp.column(name, table=table, quoted=True)
