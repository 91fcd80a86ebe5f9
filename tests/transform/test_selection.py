"""``--select`` / ``--exclude``: names, graph operators, layers, unions and errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.transform.config import Layer
from strata.transform.dag import ModelDag, build_dag
from strata.transform.errors import SelectionError
from strata.transform.selection import select
from strata.transform.sql import parse_model

SQL: dict[str, tuple[Layer, str]] = {
    "stg_profiles": ("silver", "select id, name from bronze.wfm.profiles"),
    "stg_shifts": ("silver", "select id, profile_id, hours from bronze.wfm.shifts"),
    "stg_teams": ("silver", "select id from bronze.wfm.teams"),
    "dim_profiles": ("gold", "select * from stg_profiles"),
    "fct_shifts": ("gold", "select * from stg_shifts join stg_profiles on true"),
    "rpt_hours": ("gold", "select * from fct_shifts"),
}
ORDER = ["stg_profiles", "dim_profiles", "stg_shifts", "fct_shifts", "rpt_hours", "stg_teams"]


@pytest.fixture(scope="module")
def dag() -> ModelDag:
    return build_dag({name: parse_model(name, layer, sql) for name, (layer, sql) in SQL.items()})


def test_the_fixture_order(dag: ModelDag) -> None:
    assert dag.topological_order() == ORDER


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (None, None, ORDER),
        ("", "  ", ORDER),
        ("fct_shifts", None, ["fct_shifts"]),
        ("+fct_shifts", None, ["stg_profiles", "stg_shifts", "fct_shifts"]),
        ("fct_shifts+", None, ["fct_shifts", "rpt_hours"]),
        ("+fct_shifts+", None, ["stg_profiles", "stg_shifts", "fct_shifts", "rpt_hours"]),
        ("stg_profiles+", None, ["stg_profiles", "dim_profiles", "fct_shifts", "rpt_hours"]),
        ("layer:silver", None, ["stg_profiles", "stg_shifts", "stg_teams"]),
        ("layer:gold", None, ["dim_profiles", "fct_shifts", "rpt_hours"]),
        ("+layer:gold", "stg_teams", ORDER[:-1]),
        ("layer:silver+", "layer:silver", ["dim_profiles", "fct_shifts", "rpt_hours"]),
        ("rpt_hours stg_teams", None, ["rpt_hours", "stg_teams"]),
        ("rpt_hours\tdim_profiles  rpt_hours", None, ["dim_profiles", "rpt_hours"]),
        ("+rpt_hours", "+stg_shifts", ["stg_profiles", "fct_shifts", "rpt_hours"]),
        (None, "layer:gold", ["stg_profiles", "stg_shifts", "stg_teams"]),
        (None, "stg_profiles+", ["stg_shifts", "stg_teams"]),
        ("dim_profiles", "dim_profiles", []),
    ],
)
def test_select(
    dag: ModelDag, include: str | None, exclude: str | None, expected: list[str]
) -> None:
    assert select(dag, include, exclude) == expected


def test_layers_can_be_given_explicitly(dag: ModelDag) -> None:
    layers = dict.fromkeys(SQL, "gold")
    assert select(dag, "layer:silver", None, layers) == []
    assert select(dag, "layer:gold", None, layers) == ORDER


@pytest.mark.parametrize(
    ("include", "exclude", "selector", "reason"),
    [
        ("fct_shift", None, "fct_shift", "no model named 'fct_shift' (did you mean 'fct_shifts'?)"),
        (None, "+nope+ zzz", "nope zzz", "no model named 'nope', 'zzz'"),
        ("layer:bronze", None, "layer:bronze", "unknown layer 'bronze'"),
        ("tag:nightly", None, "tag:nightly", "unknown selector method 'tag:'"),
        ("+", None, "+", "use name, +name, name+, +name+ or layer:<silver|gold>"),
        ("a+b", None, "a+b", "use name, +name"),
        ("++a", None, "++a", "use name, +name"),
    ],
)
def test_selection_errors(
    dag: ModelDag, include: str | None, exclude: str | None, selector: str, reason: str
) -> None:
    with pytest.raises(SelectionError) as info:
        select(dag, include, exclude)
    assert info.value.selector == selector
    assert reason in info.value.reason
    assert str(info.value).startswith(f"cannot select '{selector}': ")


# -- properties --------------------------------------------------------------------------

_SELECTORS = st.builds(
    lambda up, name, down: f"{'+' if up else ''}{name}{'+' if down else ''}",
    st.booleans(),
    st.sampled_from([*SQL, "layer:silver", "layer:gold"]),
    st.booleans(),
)
_EXPRESSIONS = st.lists(_SELECTORS, max_size=4).map(" ".join)


@given(include=_EXPRESSIONS, exclude=_EXPRESSIONS)
def test_selection_is_ordered_and_excludes_win(dag: ModelDag, include: str, exclude: str) -> None:
    chosen = select(dag, include, exclude)
    assert chosen == [name for name in ORDER if name in chosen]  # topological, no repeats
    assert set(chosen) == set(select(dag, include)) - set(select(dag, exclude) if exclude else ())


@given(name=st.sampled_from(sorted(SQL)))
def test_graph_operators_match_the_dag(dag: ModelDag, name: str) -> None:
    assert set(select(dag, f"+{name}")) == dag.upstream(name) | {name}
    assert set(select(dag, f"{name}+")) == dag.downstream(name) | {name}
    assert set(select(dag, f"+{name}+")) == dag.upstream(name) | dag.downstream(name) | {name}
