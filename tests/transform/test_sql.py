"""Model SQL: parsing, reference extraction and the silver lint, with golden findings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from strata.core.errors import Terminal
from strata.transform.errors import ModelSqlError, SilverRuleError, TransformError
from strata.transform.sql import (
    ModelSql,
    SourceRef,
    find_references,
    lint_silver,
    parse_model,
    silver_findings,
)

PROFILES = SourceRef("wfm", "profiles")
TEAMS = SourceRef("wfm", "teams")


def refs(sql: str, layer: str = "gold") -> tuple[set[str], set[SourceRef]]:
    model = parse_model("m", layer, sql)  # type: ignore[arg-type]
    return set(model.model_refs), set(model.source_refs)


# -- references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "models", "sources"),
    [
        ("select * from bronze.wfm.profiles", set(), {PROFILES}),
        ("select * from stg_profiles", {"stg_profiles"}, set()),
        ("select * from silver.stg_profiles", {"stg_profiles"}, set()),
        ("select * from gold.fct_shifts", {"fct_shifts"}, set()),
        # DuckDB folds identifiers, quoted or not, so these all name the same things.
        ("select * from Stg_Profiles", {"stg_profiles"}, set()),
        ('select * from "SILVER"."Stg_Profiles"', {"stg_profiles"}, set()),
        ('select * from "Bronze"."WFM"."Profiles"', set(), {PROFILES}),
        (
            "select * from stg_a a join gold.dim_b b on a.id = b.id, bronze.wfm.teams",
            {"stg_a", "dim_b"},
            {TEAMS},
        ),
        ("select * from a union all select * from b", {"a", "b"}, set()),
        ("select * from a where id in (select id from b)", {"a", "b"}, set()),
        ("select (select max(v) from c) as top from a", {"a", "c"}, set()),
        ("select * from (select * from d) as sub", {"d"}, set()),
        # CTEs stay local wherever they are used: subqueries, other CTEs, set operations.
        (
            "with c as (select * from bronze.wfm.teams) "
            "select * from a where id in (select id from c)",
            {"a"},
            {TEAMS},
        ),
        (
            "with c as (select * from bronze.wfm.teams), d as (select * from c) "
            "select * from d union all select * from c",
            set(),
            {TEAMS},
        ),
        ("select * from range(10)", set(), set()),
        ("select * from generate_series(1, 3)", set(), set()),
        ("select 1 as one", set(), set()),
    ],
)
def test_references(sql: str, models: set[str], sources: set[SourceRef]) -> None:
    assert refs(sql) == (models, sources)


def test_a_cte_shadows_a_model_of_the_same_name() -> None:
    sql = "with stg_profiles as (select * from bronze.wfm.profiles) select * from stg_profiles"
    assert refs(sql) == (set(), {PROFILES})


def test_cte_names_are_matched_case_insensitively() -> None:
    assert refs('with "Recent" as (select * from x) select * from recent') == ({"x"}, set())


def test_a_cte_body_reads_the_model_it_shadows() -> None:
    # Without RECURSIVE, a CTE is not visible inside its own body.
    assert refs("with x as (select * from x where ok) select * from x") == ({"x"}, set())


def test_a_recursive_cte_is_not_a_reference() -> None:
    sql = (
        "with recursive n as (select 1 as i union all select i + 1 from n where i < 3) "
        "select * from n"
    )
    assert refs(sql) == (set(), set())


def test_a_cte_is_local_to_its_subquery() -> None:
    sql = "select * from (with x as (select 1 as a) select * from x) s cross join x"
    assert refs(sql) == ({"x"}, set())


def test_the_tree_keeps_the_authors_spelling() -> None:
    model = parse_model("m", "gold", 'select first_name as "FirstName" from Stg_Profiles')
    assert isinstance(model.tree, exp.Select)
    assert model.tree.sql(dialect="duckdb") == 'SELECT first_name AS "FirstName" FROM Stg_Profiles'


def test_find_references_returns_nodes_of_the_given_tree() -> None:
    model = parse_model("m", "gold", "with c as (select * from A) select * from c join bronze.x.y")
    found = find_references("m", model.tree)
    assert {ref for _, ref in found} == {"a", SourceRef("x", "y")}
    tree_tables = [id(t) for t in model.tree.find_all(exp.Table)]
    assert all(id(node) in tree_tables for node, _ in found)  # rewritable in place
    assert {node.name for node, _ in found} == {"A", "y"}


def test_source_ref_reads_as_sql() -> None:
    assert str(PROFILES) == "bronze.wfm.profiles"
    assert sorted([TEAMS, PROFILES]) == [PROFILES, TEAMS]


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
# A bare (unquoted) name must not be an SQL keyword: `with on as (...)` is not SQL.
_BARE_NAMES = _NAMES.filter(lambda n: n.upper() not in DuckDB.Tokenizer.KEYWORDS)


def _spell(name: str, upper: bool, quoted: bool) -> str:
    text = name.upper() if upper else name
    return f'"{text}"' if quoted else text


@given(
    name=_NAMES,
    upper=st.booleans(),
    quoted=st.booleans(),
    schema=st.sampled_from(["", "silver.", "gold."]),
)
def test_any_spelling_of_a_model_name_is_that_model(
    name: str, upper: bool, quoted: bool, schema: str
) -> None:
    assert refs(f"select * from {schema}{_spell(name, upper, quoted)}") == ({name}, set())


@given(ns=_NAMES, table=_NAMES, upper=st.booleans(), quoted=st.booleans())
def test_any_spelling_of_a_bronze_table_is_that_source(
    ns: str, table: str, upper: bool, quoted: bool
) -> None:
    sql = f"select * from bronze.{_spell(ns, upper, quoted)}.{_spell(table, upper, quoted)}"
    assert refs(sql) == (set(), {SourceRef(ns, table)})


@given(name=_BARE_NAMES, upper=st.booleans())
def test_a_cte_always_shadows_the_model_it_is_named_after(name: str, upper: bool) -> None:
    cte = name.upper() if upper else name
    sql = f"with {cte} as (select * from bronze.ns.t) select * from {name}"
    assert refs(sql) == (set(), {SourceRef("ns", "t")})


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "SQL is empty"),
        ("-- nothing here\n", "SQL is empty"),
        ("select 1; select 2", "SQL has 2 statements"),
        ("insert into t select 1", "must be a SELECT query, not INSERT"),
        ("create table t as select 1", "must be a SELECT query, not CREATE"),
        ("drop table t", "must be a SELECT query, not DROP"),
        ("copy t to 'out.csv'", "must be a SELECT query, not COPY"),
        ("attach 'other.db'", "must be a SELECT query, not ATTACH"),
        ("values (1)", "must be a SELECT query, not VALUES"),
        ("select * into t from bronze.a.b", "must only read, but it has SELECT ... INTO"),
        ("select from where", "Expected table name but got 'where' at line 1, column 17"),
        ("select 1,\n  (2", "at line 2, column 4"),
        ("select 'unclosed", "SQL does not parse: Error tokenizing"),
        ("select * from read_parquet('x/*.parquet')", "reads files directly with read_parquet()"),
        ("select * from read_csv_auto('x.csv')", "reads files directly with read_csv_auto()"),
        ("select * from 'lake/x.parquet'", "reads files directly ('lake/x.parquet')"),
        ("select * from bronze.profiles", "reads 'bronze.profiles'; use bronze.<namespace>"),
        ("select * from main.t", "reads 'main.t'; models read bronze.<namespace>.<table>"),
        ("select * from a.b.c.d", "reads 'a.b.c.d'"),
        ('select * from "stg-profiles"', "'stg-profiles' is not a valid name"),
    ],
)
def test_refused_sql(sql: str, reason: str) -> None:
    with pytest.raises(ModelSqlError) as info:
        parse_model("stg_profiles", "silver", sql)
    assert info.value.model == "stg_profiles"
    assert reason in info.value.reason
    assert str(info.value).startswith("model 'stg_profiles': ")


def test_statement_fallbacks_are_refused_by_keyword() -> None:
    with pytest.raises(ModelSqlError, match="not LOAD"):
        parse_model("m", "gold", "load httpfs")


@pytest.mark.parametrize(("name", "layer"), [("Stg", "silver"), ("1x", "gold"), ("m", "bronze")])
def test_bad_model_name_or_layer(name: str, layer: str) -> None:
    with pytest.raises(ModelSqlError) as info:
        parse_model(name, layer, "select 1")  # type: ignore[arg-type]
    assert info.value.model == name


def test_errors_are_terminal() -> None:
    assert issubclass(ModelSqlError, TransformError)
    assert issubclass(SilverRuleError, Terminal)


# -- silver lint -------------------------------------------------------------------------

ACCEPTED = [
    "select id, cast(hours as double) as hours from bronze.wfm.profiles",
    "select id::bigint as profile_id, trim(lower(email)) as email from bronze.wfm.profiles",
    "select coalesce(name, '') as name, nullif(team_id, '') as team_id from bronze.wfm.profiles",
    "select case when status = 'A' then 'active' else 'inactive' end as status "
    "from bronze.wfm.profiles where deleted_at is null",
    "select * exclude (payload), strptime(ts, '%Y') as ts from bronze.wfm.profiles",
    "with src as (select * from bronze.wfm.profiles), "
    "kept as (select * from src where not is_deleted) select id from kept",
    "select * from (select * from bronze.wfm.profiles where deleted_at is null) as live",
    "select id from bronze.wfm.profiles as p where p.deleted_at is null order by id",
    "select id, len(tags) as tag_count, tags[1] as first_tag from bronze.wfm.profiles",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_structural_silver_models_pass(sql: str) -> None:
    model = parse_model("stg_profiles", "silver", sql)
    assert silver_findings(model) == ()
    lint_silver(model)


REFUSED = {
    "select p.id, t.name from bronze.wfm.profiles p join bronze.wfm.teams t on p.team_id = t.id": (
        "more than one source: bronze.wfm.profiles, bronze.wfm.teams",
        "join: JOIN bronze.wfm.teams AS t ON p.team_id = t.id",
    ),
    "select * from bronze.wfm.profiles, bronze.wfm.teams": (
        "more than one source: bronze.wfm.profiles, bronze.wfm.teams",
        "join: comma join with bronze.wfm.teams",
    ),
    "select * from bronze.wfm.profiles a join bronze.wfm.profiles b using (id)": (
        "join: JOIN bronze.wfm.profiles AS b USING (id)",
    ),
    "select company_id, count(*) as n from bronze.wfm.profiles group by company_id": (
        "aggregate: COUNT(*)",
        "aggregate: GROUP BY company_id",
    ),
    "select company_id from bronze.wfm.profiles group by all having sum(hours) > 8": (
        "aggregate: GROUP BY ALL",
        "aggregate: HAVING SUM(hours) > 8",
    ),
    "select id, histogram(team) as h from bronze.wfm.profiles": ("aggregate: HISTOGRAM(team)",),
    "select *, row_number() over (partition by id order by ingested_at desc) as rn "
    "from bronze.wfm.profiles qualify rn = 1": (
        "window function: ROW_NUMBER() OVER (PARTITION BY id ORDER BY ingested_at DESC)",
    ),
    "select distinct on (id) * from bronze.wfm.profiles order by id, ingested_at desc": (
        "distinct: DISTINCT ON (id) (Strata dedupes silver by primary key)",
    ),
    "select distinct id from bronze.wfm.profiles": (
        "distinct: DISTINCT (Strata dedupes silver by primary key)",
    ),
    "select id from bronze.wfm.profiles union all select id from bronze.wfm.old_profiles": (
        "more than one source: bronze.wfm.old_profiles, bronze.wfm.profiles",
        "set operation: UNION ALL",
    ),
    "select id from bronze.wfm.profiles except select id from bronze.wfm.profiles": (
        "set operation: EXCEPT",
    ),
    "select * from bronze.wfm.profiles where team_id in (select id from bronze.wfm.teams)": (
        "more than one source: bronze.wfm.profiles, bronze.wfm.teams",
        "subquery reads bronze.wfm.teams",
    ),
    "with a as (select * from bronze.wfm.profiles), b as (select * from bronze.wfm.teams) "
    "select * from a": ("more than one source: bronze.wfm.profiles, bronze.wfm.teams",),
    "select * from stg_profiles": (
        "model reference: stg_profiles (silver models read bronze tables only)",
    ),
    "select 1 as one": ("no source: a silver model reads exactly one bronze table",),
    "select * from bronze.wfm.profiles limit 100": ("row limit: LIMIT 100",),
    "select id, unnest(tags) as tag from bronze.wfm.profiles": ("row expansion: UNNEST(tags)",),
    "select * from bronze.wfm.profiles pivot (sum(hours) for day in ('mon', 'tue'))": (
        "pivot: PIVOT",
    ),
    "select id, sum(hours) from bronze.wfm.profiles "
    "left join silver.stg_teams using (team_id) group by id": (
        "model reference: stg_teams (silver models read bronze tables only)",
        "more than one source: bronze.wfm.profiles, stg_teams",
        "join: LEFT JOIN silver.stg_teams USING (team_id)",
        "aggregate: SUM(hours)",
        "aggregate: GROUP BY id",
    ),
}


@pytest.mark.parametrize(("sql", "findings"), REFUSED.items())
def test_silver_lint_findings(sql: str, findings: tuple[str, ...]) -> None:
    model = parse_model("stg_profiles", "silver", sql)
    assert silver_findings(model) == findings
    with pytest.raises(SilverRuleError) as info:
        lint_silver(model)
    assert info.value.model == "stg_profiles"
    assert info.value.findings == findings


def test_silver_rule_message_names_the_model_and_every_finding() -> None:
    model = parse_model("stg_x", "silver", "select a, count(*) from bronze.a.b join c using (k)")
    with pytest.raises(SilverRuleError) as info:
        lint_silver(model)
    message = str(info.value)
    assert message.startswith("silver model 'stg_x' must only cast, rename")
    assert all(finding in message for finding in info.value.findings)
    assert "join: JOIN c USING (k)" in message
    assert "aggregate: COUNT(*)" in message


def test_model_sql_is_a_value() -> None:
    one = parse_model("m", "gold", "select * from a")
    assert one == parse_model("m", "gold", "SELECT * FROM a")
    assert isinstance(one, ModelSql)
    with pytest.raises(AttributeError):
        one.name = "n"  # type: ignore[misc]
