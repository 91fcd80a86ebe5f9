"""The model DAG: which model reads which, in what order they run, and what runs together.

Edges come from each model's parsed SQL (``ModelSql.model_refs``). Every ordering is
deterministic, with ties broken by name, so two runs of the same project build models in
the same order and log the same plan.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping
from types import MappingProxyType

from strata.transform.errors import DependencyCycleError, MissingReferenceError
from strata.transform.sql import ModelSql, SourceRef


class ModelDag:
    """Models and the models each reads; only ever built valid (see ``build_dag``)."""

    __slots__ = ("_children", "_order", "_parents", "_waves", "models")

    def __init__(
        self, models: Mapping[str, ModelSql], sources: Collection[SourceRef] | None = None
    ) -> None:
        _check_references(models, sources)
        self.models: Mapping[str, ModelSql] = MappingProxyType(dict(models))
        self._parents = {name: frozenset(m.model_refs) for name, m in self.models.items()}
        children: dict[str, set[str]] = {name: set() for name in self.models}
        for name, parents in self._parents.items():
            for parent in parents:
                children[parent].add(name)
        self._children = {name: frozenset(kids) for name, kids in children.items()}
        self._order, self._waves = _order_and_waves(self._parents)

    def __contains__(self, name: object) -> bool:
        return name in self.models

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def parents(self, name: str) -> frozenset[str]:
        """The models ``name`` reads directly."""
        return self._parents[self._known(name)]

    def children(self, name: str) -> frozenset[str]:
        """The models that read ``name`` directly."""
        return self._children[self._known(name)]

    def upstream(self, name: str) -> frozenset[str]:
        """Every model ``name`` reads, directly or through others (not ``name`` itself)."""
        return _reachable(self._parents, self._known(name))

    def downstream(self, name: str) -> frozenset[str]:
        """Every model that reads ``name``, directly or through others."""
        return _reachable(self._children, self._known(name))

    def topological_order(self) -> list[str]:
        """All models, each after everything it reads; among ready models, by name."""
        return list(self._order)

    def waves(self) -> list[list[str]]:
        """Models grouped for parallel runs: a model is in the first wave after every model it
        reads, so the models of one wave never depend on each other."""
        return [list(wave) for wave in self._waves]

    def in_order(self, names: Iterable[str]) -> list[str]:
        """``names`` sorted into topological order."""
        wanted = {self._known(name) for name in names}
        return [name for name in self._order if name in wanted]

    def _known(self, name: str) -> str:
        if name not in self.models:
            raise KeyError(f"no model named '{name}'")
        return name


def build_dag(
    models: Mapping[str, ModelSql], sources: Collection[SourceRef] | None = None
) -> ModelDag:
    """Link ``models`` (keyed by name) into a DAG. Every model a model reads must exist, and
    so must every bronze table it reads when ``sources`` is given; models must not read each
    other in a cycle."""
    return ModelDag(models, sources)


def _check_references(
    models: Mapping[str, ModelSql], sources: Collection[SourceRef] | None
) -> None:
    for key, model in models.items():
        if key != model.name:
            raise ValueError(f"model '{model.name}' is keyed as '{key}'")
    known_sources = None if sources is None else {str(s) for s in sources}
    for name in sorted(models):  # sorted, so the same project always reports the same error
        model = models[name]
        for ref in sorted(model.model_refs):
            if ref not in models:
                raise MissingReferenceError(name, ref, _close(ref, set(models) - {name}))
        for source in sorted(model.source_refs):
            if known_sources is not None and str(source) not in known_sources:
                raise MissingReferenceError(name, str(source), _close(str(source), known_sources))


def _close(word: str, candidates: Iterable[str]) -> tuple[str, ...]:
    # Strict cutoff: names sharing a stg_/bronze.ns. prefix look alike to difflib's default.
    return tuple(difflib.get_close_matches(word, sorted(candidates), n=3, cutoff=0.75))


def _order_and_waves(
    parents: Mapping[str, frozenset[str]],
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Kahn's algorithm with a name-ordered heap; raises on a cycle, naming its models."""
    waiting = {name: len(deps) for name, deps in parents.items()}
    children: dict[str, list[str]] = {name: [] for name in parents}
    for name, deps in parents.items():
        for dep in deps:
            children[dep].append(name)
    wave_of = dict.fromkeys((name for name, n in waiting.items() if n == 0), 0)
    ready = sorted(wave_of)
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            # A model's wave is one past the latest wave among the models it reads.
            wave_of[child] = max(wave_of.get(child, 0), wave_of[name] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(parents):
        raise DependencyCycleError(_find_cycle(parents, set(parents) - set(order)))
    waves: list[list[str]] = [[] for _ in range(max(wave_of.values(), default=-1) + 1)]
    for name in order:  # order is already sorted by name within a wave's ready set
        waves[wave_of[name]].append(name)
    return tuple(order), tuple(tuple(sorted(wave)) for wave in waves)


def _find_cycle(parents: Mapping[str, frozenset[str]], stuck: set[str]) -> tuple[str, ...]:
    """One cycle among the models Kahn's algorithm could not place.

    Each stuck model reads at least one other stuck model (else it would have been placed),
    so following those reads from any of them must come back round.
    """
    path: list[str] = []
    seen: dict[str, int] = {}
    name = min(stuck)
    while name not in seen:
        seen[name] = len(path)
        path.append(name)
        name = min(parents[name] & stuck)
    cycle = path[seen[name] :]
    start = cycle.index(min(cycle))  # rotate so the same cycle always reads the same way
    return tuple(cycle[start:] + cycle[:start])


def _reachable(edges: Mapping[str, frozenset[str]], start: str) -> frozenset[str]:
    seen: set[str] = set()
    stack = list(edges[start])
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(edges[name] - seen)
    return frozenset(seen)
