"""``strata run --select/--exclude``: dbt-style model selection over the DAG.

An expression is a space-separated union of selectors:

    name            the model
    +name           the model and every model it reads, transitively
    name+           the model and every model that reads it, transitively
    +name+          both
    layer:silver    every silver model (``layer:gold`` likewise; ``+``/``+`` apply too)

The result is the include set minus the exclude set, in topological order. A misspelt
name is an error rather than an empty match: ``--exclude fct_shfits`` must not quietly run
the model it meant to skip.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Final

from strata.transform.dag import ModelDag
from strata.transform.errors import SelectionError
from strata.transform.sql import MODEL_SCHEMAS

_SELECTOR: Final = re.compile(r"(?P<up>\+?)(?P<body>[^+]+)(?P<down>\+?)")
_FORMS: Final = "use name, +name, name+, +name+ or layer:<silver|gold>"


def select(
    dag: ModelDag,
    include: str | None = None,
    exclude: str | None = None,
    layers: Mapping[str, str] | None = None,
) -> list[str]:
    """The models ``include`` picks (all when empty) minus those ``exclude`` picks, in
    topological order. ``layers`` maps model names to layers; by default each model's own."""
    layer_of = dict(layers) if layers is not None else {n: m.layer for n, m in dag.models.items()}
    chosen = _evaluate(dag, include, layer_of) if include and include.strip() else set(dag.models)
    if exclude and exclude.strip():
        chosen -= _evaluate(dag, exclude, layer_of)
    return dag.in_order(chosen)


def _evaluate(dag: ModelDag, expression: str, layer_of: Mapping[str, str]) -> set[str]:
    selected: set[str] = set()
    unknown: list[str] = []
    for token in expression.split():
        match = _SELECTOR.fullmatch(token)
        if match is None:
            raise SelectionError(token, _FORMS)
        body = match["body"]
        if ":" in body:
            seeds = _layer_models(token, body, dag, layer_of)
        elif body in dag:
            seeds = {body}
        else:
            unknown.append(body)  # keep going, so one error names every misspelt model
            continue
        selected |= seeds
        for seed in seeds:
            if match["up"]:
                selected |= dag.upstream(seed)
            if match["down"]:
                selected |= dag.downstream(seed)
    if unknown:
        raise SelectionError(" ".join(unknown), _unknown_reason(unknown, dag))
    return selected


def _layer_models(token: str, body: str, dag: ModelDag, layer_of: Mapping[str, str]) -> set[str]:
    method, _, layer = body.partition(":")
    if method != "layer":
        raise SelectionError(token, f"unknown selector method '{method}:'; {_FORMS}")
    if layer not in MODEL_SCHEMAS:
        raise SelectionError(token, f"unknown layer '{layer}'; use layer:silver or layer:gold")
    return {name for name in dag.models if layer_of.get(name) == layer}


def _unknown_reason(unknown: list[str], dag: ModelDag) -> str:
    names = sorted(dag.models)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, names, n=1)
        parts.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return f"no model named {', '.join(parts)}"
