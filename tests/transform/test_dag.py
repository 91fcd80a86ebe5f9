"""The model DAG: references, cycles, order and waves, with random DAGs as properties."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from strata.transform.config import Layer
from strata.transform.dag import ModelDag, build_dag
from strata.transform.errors import DependencyCycleError, MissingReferenceError
from strata.transform.sql import ModelSql, SourceRef, parse_model

PROFILES = SourceRef("wfm", "profiles")
SHIFTS = SourceRef("wfm", "shifts")


def project() -> dict[str, ModelSql]:
    """bronze -> stg_profiles, stg_shifts -> fct_shifts -> rpt_hours; dim_profiles."""
    sql: dict[str, tuple[Layer, str]] = {
        "stg_profiles": ("silver", "select id, name from bronze.wfm.profiles"),
        "stg_shifts": ("silver", "select id, profile_id, hours from bronze.wfm.shifts"),
        "dim_profiles": ("gold", "select * from stg_profiles"),
        "fct_shifts": (
            "gold",
            "select s.*, p.name from silver.stg_shifts s "
            "join stg_profiles p on p.id = s.profile_id",
        ),
        "rpt_hours": ("gold", "select name, sum(hours) from gold.fct_shifts group by name"),
    }
    return {name: parse_model(name, layer, text) for name, (layer, text) in sql.items()}


def test_a_project_dag() -> None:
    dag = build_dag(project(), sources=[PROFILES, SHIFTS])
    assert dag.topological_order() == [
        "stg_profiles",
        "dim_profiles",
        "stg_shifts",
        "fct_shifts",
        "rpt_hours",
    ]
    assert dag.waves() == [
        ["stg_profiles", "stg_shifts"],
        ["dim_profiles", "fct_shifts"],
        ["rpt_hours"],
    ]
    assert dag.parents("fct_shifts") == {"stg_shifts", "stg_profiles"}
    assert dag.children("stg_profiles") == {"dim_profiles", "fct_shifts"}
    assert dag.upstream("rpt_hours") == {"fct_shifts", "stg_shifts", "stg_profiles"}
    assert dag.downstream("stg_profiles") == {"dim_profiles", "fct_shifts", "rpt_hours"}
    assert dag.upstream("stg_profiles") == frozenset()
    assert dag.in_order({"rpt_hours", "stg_shifts"}) == ["stg_shifts", "rpt_hours"]
    assert list(dag) == dag.topological_order()
    assert "fct_shifts" in dag
    assert len(dag) == 5


def test_unknown_model_names_raise_key_error() -> None:
    dag = build_dag(project())
    with pytest.raises(KeyError, match="nope"):
        dag.upstream("nope")


def test_a_missing_model_is_named_with_suggestions() -> None:
    models = project()
    models["dim_profiles"] = parse_model("dim_profiles", "gold", "select * from stg_profile")
    with pytest.raises(MissingReferenceError) as info:
        build_dag(models)
    assert (info.value.model, info.value.reference) == ("dim_profiles", "stg_profile")
    assert info.value.suggestions == ("stg_profiles",)
    assert str(info.value) == (
        "model 'dim_profiles' reads 'stg_profile', which is not a known model; "
        "did you mean 'stg_profiles'?"
    )


def test_unknown_sources_are_errors_only_when_sources_are_given() -> None:
    build_dag(project())  # no catalog of sources: bronze references are not checked
    with pytest.raises(MissingReferenceError) as info:
        build_dag(project(), sources=[PROFILES, SourceRef("wfm", "shift")])
    assert info.value.model == "stg_shifts"
    assert info.value.reference == "bronze.wfm.shifts"
    assert info.value.suggestions == ("bronze.wfm.shift",)
    assert "not a known bronze table" in str(info.value)


def test_a_cycle_names_its_models_in_reading_order() -> None:
    models = {
        "a": parse_model("a", "gold", "select * from b"),
        "b": parse_model("b", "gold", "select * from c join bronze.x.y using (id)"),
        "c": parse_model("c", "gold", "select * from a"),
        "d": parse_model("d", "gold", "select * from a"),  # downstream of the cycle, not in it
    }
    with pytest.raises(DependencyCycleError) as info:
        build_dag(models)
    assert info.value.cycle == ("a", "b", "c")
    assert str(info.value) == "models form a cycle: a -> b -> c -> a (each model reads the next)"


def test_a_model_reading_itself_is_a_cycle() -> None:
    with pytest.raises(DependencyCycleError) as info:
        build_dag({"a": parse_model("a", "gold", "select * from gold.a")})
    assert info.value.cycle == ("a",)
    assert "a -> a" in str(info.value)


def test_models_must_be_keyed_by_their_name() -> None:
    with pytest.raises(ValueError, match="keyed as 'b'"):
        build_dag({"b": parse_model("a", "gold", "select 1")})


def test_an_empty_project() -> None:
    dag = build_dag({})
    assert dag.topological_order() == []
    assert dag.waves() == []


# -- properties over random graphs --------------------------------------------------------

_TREE = exp.select("1")


def model(name: str, parents: frozenset[str]) -> ModelSql:
    """A model with the given reads; the DAG only looks at references, not the tree."""
    return ModelSql(name, "gold", _TREE, parents, frozenset())


@st.composite
def dags(draw: st.DrawFn, min_size: int = 0) -> dict[str, frozenset[str]]:
    """Random DAGs: node i may read only nodes before it, and names are shuffled so that
    name order says nothing about dependency order."""
    size = draw(st.integers(min_size, 12))
    names = draw(st.permutations([f"m{i:02d}" for i in range(size)]))
    edges: dict[str, frozenset[str]] = {}
    for i, name in enumerate(names):
        parents = draw(st.sets(st.sampled_from(names[:i]), max_size=4)) if i else set()
        edges[name] = frozenset(parents)
    return edges


def as_models(edges: Mapping[str, frozenset[str]]) -> dict[str, ModelSql]:
    return {name: model(name, parents) for name, parents in edges.items()}


@given(dags())
def test_topological_order_respects_every_edge(edges: dict[str, frozenset[str]]) -> None:
    order = build_dag(as_models(edges)).topological_order()
    assert sorted(order) == sorted(edges)
    position = {name: i for i, name in enumerate(order)}
    for name, parents in edges.items():
        assert all(position[parent] < position[name] for parent in parents)


@given(dags())
def test_order_is_deterministic(edges: dict[str, frozenset[str]]) -> None:
    reordered = dict(sorted(edges.items(), reverse=True))
    assert build_dag(as_models(edges)).topological_order() == (
        build_dag(as_models(reordered)).topological_order()
    )


@given(dags())
def test_waves_partition_the_models_as_early_as_possible(
    edges: dict[str, frozenset[str]],
) -> None:
    waves = build_dag(as_models(edges)).waves()
    flat = [name for wave in waves for name in wave]
    assert sorted(flat) == sorted(edges)  # every model exactly once
    wave_of = {name: i for i, wave in enumerate(waves) for name in wave}
    for name, parents in edges.items():
        assert all(wave_of[parent] < wave_of[name] for parent in parents)
        if wave_of[name] > 0:  # nothing waits longer than its latest parent requires
            assert max(wave_of[parent] for parent in parents) == wave_of[name] - 1
    assert all(wave == sorted(wave) and wave for wave in waves)


@given(dags())
def test_upstream_and_downstream_mirror_each_other(edges: dict[str, frozenset[str]]) -> None:
    dag = build_dag(as_models(edges))
    for name in edges:
        assert dag.parents(name) <= dag.upstream(name)
        assert name not in dag.upstream(name)
        for ancestor in dag.upstream(name):
            assert name in dag.downstream(ancestor)


@given(dags(min_size=1), st.data())
def test_a_back_edge_is_always_reported_as_a_real_cycle(
    edges: dict[str, frozenset[str]], data: st.DataObject
) -> None:
    dag = build_dag(as_models(edges))
    # Make a model read one of its readers (or itself): that always closes a loop.
    name = data.draw(st.sampled_from(sorted(edges)))
    reader = data.draw(st.sampled_from(sorted(dag.downstream(name) | {name})))
    looped = {**edges, name: edges[name] | {reader}}
    with pytest.raises(DependencyCycleError) as info:
        build_dag(as_models(looped))
    cycle = info.value.cycle
    assert len(set(cycle)) == len(cycle)
    assert cycle[0] == min(cycle)
    for model_name, read in zip(cycle, (*cycle[1:], cycle[0]), strict=True):
        assert read in looped[model_name]


def test_model_dag_cannot_be_built_invalid() -> None:
    with pytest.raises(MissingReferenceError):
        ModelDag({"a": model("a", frozenset({"b"}))})
