"""The query guard: what it accepts (and that the rewritten SQL runs on DuckDB), and the
DuckDB escape techniques it refuses, each with the reason a tenant would see."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.errors import Terminal
from strata.semantic import guard as guard_module
from strata.semantic.guard import MAX_SQL_CHARS, GuardedQuery, QueryRefused, guard_query

EXPOSED = ("gold.fct_assignments", "silver.profiles", "gold.dim_team", "silver.dim_team")
ALL_EXPOSED = "exposed: gold.dim_team, gold.fct_assignments, silver.dim_team, silver.profiles"


def guard(sql: str, parameters: Mapping[str, object] | None = None, max_rows: int = 100) -> str:
    return guard_query(sql, EXPOSED, parameters=parameters or {}, max_rows=max_rows).sql


def refused(sql: str, parameters: Mapping[str, object] | None = None) -> str:
    with pytest.raises(QueryRefused) as info:
        guard_query(sql, EXPOSED, parameters=parameters or {}, max_rows=100)
    assert str(info.value) == info.value.reason
    assert "\n" not in info.value.reason
    return info.value.reason


@pytest.fixture
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB holding the exposed tables, plus a `secrets` table nothing may read."""
    con = duckdb.connect()
    con.execute("""
        create schema gold; create schema silver;
        create table gold.fct_assignments as
            select i as id, i % 3 as user_id, i * 10 as minutes, date '2024-01-01' + i::int as day
            from range(10) t(i);
        create table silver.profiles as
            select * from (values (0, 'ann'), (1, 'bob'), (2, 'cy')) t(id, name);
        create table gold.dim_team as select 1 as team;
        create table silver.dim_team as select 2 as team;
        create table main.secrets as select 'top secret' as s;
    """)
    yield con
    con.close()


def run(con: duckdb.DuckDBPyConnection, sql: str, **kwargs: object) -> list[tuple[object, ...]]:
    return con.execute(guard(sql, kwargs), kwargs or None).fetchall()


# -- accepted queries, run on DuckDB -----------------------------------------------------


def test_plain_select_is_rewritten_to_quoted_qualified_names_and_limited() -> None:
    result = guard_query("select id from gold.fct_assignments", EXPOSED, max_rows=5)
    assert result == GuardedQuery(
        'SELECT * FROM (SELECT id FROM "gold"."fct_assignments") AS q LIMIT 6',
        ("gold.fct_assignments",),
        (),
    )


def test_join_between_exposed_tables(db: duckdb.DuckDBPyConnection) -> None:
    sql = """select p.name, sum(a.minutes) as total
             from gold.fct_assignments a join silver.profiles p on a.user_id = p.id
             group by p.name having sum(a.minutes) > 120 order by total desc"""
    assert run(db, sql) == [("ann", 180), ("cy", 150)]
    result = guard_query(sql, EXPOSED, max_rows=10)
    assert result.tables == ("gold.fct_assignments", "silver.profiles")


def test_group_by_having_returns_expected_rows(db: duckdb.DuckDBPyConnection) -> None:
    sql = """select user_id, count(*) as n, sum(minutes) as total from fct_assignments
             group by user_id having count(*) > 3 order by user_id"""
    assert run(db, sql) == [(0, 4, 180)]


def test_cte_may_use_any_name_even_one_of_a_hidden_table(db: duckdb.DuckDBPyConnection) -> None:
    sql = "with secrets as (select 1 as s) select s from secrets"
    assert run(db, sql) == [(1,)]  # the CTE, not main.secrets
    assert guard_query(sql, EXPOSED, max_rows=1).tables == ()


def test_cte_shadowing_an_exposed_model_reads_the_cte(db: duckdb.DuckDBPyConnection) -> None:
    sql = "with fct_assignments as (select 42 as id) select id from fct_assignments"
    assert run(db, sql) == [(42,)]


def test_later_cte_reads_an_earlier_one(db: duckdb.DuckDBPyConnection) -> None:
    sql = """with a as (select id from gold.fct_assignments where id < 3),
                  b as (select id * 2 as d from a)
             select d from b order by d"""
    assert run(db, sql) == [(0,), (2,), (4,)]


def test_window_functions(db: duckdb.DuckDBPyConnection) -> None:
    sql = """select id, row_number() over w as rn, lag(minutes) over w as prev,
                    sum(minutes) over (partition by user_id) as per_user
             from gold.fct_assignments where user_id = 1 window w as (order by id) order by id"""
    assert run(db, sql) == [(1, 1, None, 120), (4, 2, 10, 120), (7, 3, 40, 120)]


def test_union_and_case_insensitive_names(db: duckdb.DuckDBPyConnection) -> None:
    sql = 'select team from GOLD.Dim_Team union all select team from "SILVER"."DIM_TEAM" order by 1'
    assert run(db, sql) == [(1,), (2,)]
    assert guard_query(sql, EXPOSED, max_rows=5).tables == ("gold.dim_team", "silver.dim_team")


def test_bare_name_resolves_when_unambiguous(db: duckdb.DuckDBPyConnection) -> None:
    sql = "select profiles.name from profiles where profiles.id = 1"
    assert '"silver"."profiles"' in guard(sql)
    assert run(db, sql) == [("bob",)]


def test_parameters_are_bound_by_name_not_interpolated(db: duckdb.DuckDBPyConnection) -> None:
    sql = "select name from silver.profiles where id >= $low and name <> $skip order by id"
    result = guard_query(sql, EXPOSED, parameters={"skip": "bob", "low": 0}, max_rows=9)
    assert result.parameters == ("low", "skip")
    assert "$low" in result.sql
    assert "'bob'" not in result.sql
    assert run(db, sql, low=0, skip="bob") == [("ann",), ("cy",)]


def test_parameters_accept_json_scalars() -> None:
    sql = "select $a, $b, $c, $d, $e"
    values = {"a": None, "b": True, "c": 3, "d": 2.5, "e": "x"}
    assert guard_query(sql, EXPOSED, parameters=values, max_rows=1).parameters == tuple("abcde")


def test_limit_returns_max_rows_plus_one(db: duckdb.DuckDBPyConnection) -> None:
    sql = guard("select id from gold.fct_assignments order by id desc", max_rows=3)
    assert db.execute(sql).fetchall() == [(9,), (8,), (7,), (6,)]  # order kept
    assert db.execute(guard("select 1", max_rows=0)).fetchall() == [(1,)]


def test_analytics_functions_are_allowed(db: duckdb.DuckDBPyConnection) -> None:
    sql = """select date_trunc('month', day) as m, median(minutes), quantile_cont(minutes, 0.5),
                    approx_count_distinct(user_id), string_agg(id::varchar, ',' order by id),
                    arg_max(id, minutes), coalesce(max(minutes), 0), round(avg(minutes), 1),
                    extract(year from min(day)), strftime(max(day), '%Y-%m-%d'),
                    date_diff('day', min(day), max(day)), lower(upper('Ab')), now() is not null
             from gold.fct_assignments group by 1"""
    assert run(db, sql) == [
        (
            datetime.datetime(2024, 1, 1),  # DuckDB truncates a DATE to a TIMESTAMP
            45.0,
            45.0,
            3,
            "0,1,2,3,4,5,6,7,8,9",
            9,
            90,
            45.0,
            2024,
            "2024-01-10",
            9,
            "ab",
            True,
        )
    ]


def test_values_and_lateral_subquery(db: duckdb.DuckDBPyConnection) -> None:
    assert run(db, "values (1), (2)") == [(1,), (2,)]
    sql = """select a.id, s.double from gold.fct_assignments a,
             lateral (select a.id * 2 as double) s where a.id < 2 order by 1"""
    assert run(db, sql) == [(0, 0), (1, 2)]


def test_comments_are_dropped_from_the_output() -> None:
    assert guard("select 1 /* hi */ -- there") == "SELECT * FROM (SELECT 1) AS q LIMIT 101"
    assert guard("select 1; -- a trailing comment") == "SELECT * FROM (SELECT 1) AS q LIMIT 101"


# -- refused: statements -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("copy (select 1) to '/tmp/x'", "not COPY"),
        ("copy gold.fct_assignments to '/tmp/x.csv'", "not COPY"),
        ("attach '/tmp/x.db'", "not ATTACH"),
        ("attach '/tmp/x.db' as x (read_only)", "not ATTACH"),
        ("detach x", "not DETACH"),
        ("install httpfs", "not INSTALL"),
        ("load httpfs", "not LOAD"),
        ("set enable_external_access=true", "not SET"),
        ("reset enable_external_access", "not RESET"),
        ("pragma database_list", "not PRAGMA"),
        ("call pragma_version()", "not CALL"),
        ("create table x as select 1", "not CREATE"),
        ("insert into gold.fct_assignments values (1)", "not INSERT"),
        ("update gold.fct_assignments set id = 1", "not UPDATE"),
        ("delete from gold.fct_assignments", "not DELETE"),
        ("drop table gold.fct_assignments", "not DROP"),
        ("use memory", "not USE"),
        ("checkpoint", "not CHECKPOINT"),
        ("vacuum", "not VACUUM"),
        ("summarize gold.fct_assignments", "not SUMMARIZE"),
        ("describe gold.fct_assignments", "not DESCRIBE"),
        ("explain select 1", "not EXPLAIN"),
        ("select 1 into t", "SELECT ... INTO is not allowed"),
        ("with t as (insert into x values (1) returning *) select * from t", "INSERT is not"),
        ("export database '/tmp/x'", "SQL does not parse: "),
        ("import database '/tmp/x'", "SQL does not parse: "),
    ],
)
def test_refuses_statements_other_than_one_query(sql: str, reason: str) -> None:
    assert reason in refused(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "select 1; select 2",
        "select 1 /* */ ; drop table x",
        "select 1; -- comment\n drop table x",
        "select 1 --\n; copy (select 1) to '/tmp/x'",
    ],
)
def test_refuses_stacked_statements(sql: str) -> None:
    assert refused(sql) == "SQL has 2 statements; send exactly one query"


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", ";", "; -- comment"])
def test_refuses_empty_sql(sql: str) -> None:
    assert refused(sql).startswith("SQL is empty")


def test_refuses_oversized_sql() -> None:
    sql = "select 1" + " " * MAX_SQL_CHARS
    assert refused(sql) == f"SQL is {len(sql)} characters; the limit is {MAX_SQL_CHARS}"


@pytest.mark.parametrize("sql", ["select from where", "select 'unclosed", "select (1"])
def test_parse_errors_are_condensed(sql: str) -> None:
    reason = refused(sql)
    assert reason.startswith("SQL does not parse: ")
    assert "Traceback" not in reason
    assert "\x1b" not in reason


def test_refuses_deep_nesting_without_crashing() -> None:
    assert refused("select " + "(" * 2000 + "1" + ")" * 2000) == "SQL is nested too deeply"


# -- refused: functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("select read_text('/etc/passwd')", "read_text"),
        ("select read_blob('/etc/passwd')", "read_blob"),
        ("select getenv('HOME')", "getenv"),
        ("select current_setting('threads')", "current_setting"),
        ("select range(1e12)", "range"),
        ("select generate_series(1, 10)", "generate_series"),
        ("select repeat('a', 1000000000)", "repeat"),
        ("select which_secret('s3://x', 's3')", "which_secret"),
        ("select \"read_parquet\"('/etc/passwd')", "read_parquet"),
        ("select \"getenv\"('HOME')", "getenv"),
        ("select \"ＧＥＴＥＮＶ\"('HOME')", "ＧＥＴＥＮＶ"),  # noqa: RUF001 - fullwidth on purpose
        ("select \"getenv\u200b\"('HOME')", "getenv\u200b"),
        ('select "now\u212a"()', "now\u212a"),
        ("select unknown_macro(1)", "unknown_macro"),
        ("select (select max(read_text('/x')) from gold.fct_assignments)", "read_text"),
        ("select * from gold.fct_assignments where id in (select getenv('x'))", "getenv"),
        ("select id from gold.fct_assignments order by getenv('x')", "getenv"),
        ("select row_number() over (order by getenv('x')) from fct_assignments", "getenv"),
        ("with c as (select getenv('x') as e) select e from c", "getenv"),
        ("select sum(id) filter (where getenv('x') = '') from fct_assignments", "getenv"),
        ("select {'a': getenv('x')}", "getenv"),
        ("select [1, getenv('x')]", "getenv"),
        ("select cast(getenv('x') as int)", "getenv"),
        ("values (getenv('x'))", "getenv"),
    ],
)
def test_refuses_functions_not_on_the_allowlist(sql: str, name: str) -> None:
    assert refused(sql) == f"function '{name}' is not allowed"


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("select * from read_parquet('/etc/passwd')", "read_parquet"),
        ("select * from read_parquet(['/a', '/b'])", "read_parquet"),
        ("select * from parquet_scan('/x')", "parquet_scan"),
        ("select * from read_csv_auto('/etc/passwd')", "read_csv_auto"),
        ("select * from read_json_auto('/x.json')", "read_json_auto"),
        ("select * from read_text('/etc/passwd')", "read_text"),
        ("select * from glob('*')", "glob"),
        ("select * from duckdb_settings()", "duckdb_settings"),
        ("select * from duckdb_tables()", "duckdb_tables"),
        ("select * from duckdb_secrets()", "duckdb_secrets"),
        ("select * from pragma_table_info('x')", "pragma_table_info"),
        ("select * from query('select * from secrets')", "query"),
        ("select * from query_table('secrets')", "query_table"),
        ("select * from range(1000000000000)", "range"),
        ("select * from generate_series(1, 10)", "generate_series"),
        ("select * from unnest([1, 2])", "unnest"),
        ("select * from \"read_parquet\"('/etc/passwd')", "read_parquet"),
        ("select * from gold.fct_assignments, lateral read_csv('/x')", "read_csv"),
        ("select * from gold.fct_assignments a join read_csv('/x') b on true", "read_csv"),
        ("select * from (select * from read_parquet('/x'))", "read_parquet"),
        ("select id from gold.fct_assignments where id in (from read_parquet('/x'))", "read"),
    ],
)
def test_refuses_table_functions(sql: str, name: str) -> None:
    reason = refused(sql)
    assert f"function '{name}" in reason
    assert reason.endswith("is not allowed")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("select x.lower() from gold.fct_assignments", "qualified call 'x.lower()'"),
        ("select main.lower('a')", "qualified call"),
        ("select system.main.read_text('/x')", "qualified call"),
        ("select 'a'::regclass", "type 'regclass' is not allowed"),
        ("select cast(1 as my_type)", "type 'my_type' is not allowed"),
        ("with recursive r as (select 1 as n) select n from r", "WITH RECURSIVE is not allowed"),
        ("select * from gold.fct_assignments using sample 10", "TABLESAMPLE is not allowed"),
        ("pivot gold.fct_assignments on user_id using sum(minutes)", "PIVOT"),
        ("select x -> '$.a' from gold.fct_assignments", "function 'jsonextract' is not allowed"),
        ('select cast(1 as "int); select 1")', "is not allowed"),
    ],
)
def test_refuses_other_escape_syntax(sql: str, reason: str) -> None:
    assert reason in refused(sql)


# -- refused: tables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("select * from secrets", "secrets"),
        ("select * from main.secrets", "main.secrets"),
        ("select * from '/etc/passwd'", "/etc/passwd"),
        ("select * from 'data/*.parquet'", "data/*.parquet"),
        ('select * from "gold.fct_assignments"', "gold.fct_assignments"),
        ("select * from information_schema.tables", "information_schema.tables"),
        ("select * from pg_catalog.pg_class", "pg_catalog.pg_class"),
        ("select * from sqlite_master", "sqlite_master"),
        ("select * from duckdb_tables", "duckdb_tables"),
        ("select * from bronze.fct_assignments", "bronze.fct_assignments"),
        ("select * from gold.profiles", "gold.profiles"),
        ('select * from gold."fct_assignments\u200b"', "gold.fct_assignments\u200b"),
        ('select * from gold."fct_a\u017fsignments"', "gold.fct_a\u017fsignments"),
        ("select * from gold.fct_assignments, secrets", "secrets"),
        ("select * from gold.fct_assignments natural join secrets", "secrets"),
        ("select (select s from secrets)", "secrets"),
        ("select id from fct_assignments where exists (select 1 from secrets)", "secrets"),
        ("with c as (select * from secrets) select * from c", "secrets"),
        # DuckDB reads a later CTE (or the one being defined) as a catalog table.
        ("with a as (select * from secrets), secrets as (select 1) select * from a", "secrets"),
        ("with secrets as (select * from secrets) select * from secrets", "secrets"),
        ("select * from (with secrets as (select 1) select 1) t, secrets", "secrets"),
        # DuckDB folds ASCII only: KELVIN SIGN does not name the CTE `k`.
        ('with "\u212a" as (select 1) select * from k', "k"),
    ],
)
def test_refuses_tables_that_are_not_exposed(sql: str, table: str) -> None:
    assert refused(sql) == f"table '{table}' is not exposed; {ALL_EXPOSED}"


def test_refuses_catalog_qualified_tables() -> None:
    reason = refused("select * from memory.gold.fct_assignments")
    assert reason == "catalog-qualified table 'memory.gold.fct_assignments' is not allowed"
    assert "catalog-qualified" in refused("select * from system.main.duckdb_tables")


def test_refuses_an_ambiguous_bare_name() -> None:
    reason = refused("select * from dim_team")
    assert reason == "table 'dim_team' is ambiguous; use one of gold.dim_team, silver.dim_team"


def test_refuses_a_parameter_as_table_name() -> None:
    assert refused("select * from $t", {"t": "secrets"}) == "'$t' is not a table name"


def test_refuses_time_travel_clauses() -> None:
    assert "is not allowed" in refused("select * from gold.fct_assignments at (version => 1)")


@settings(deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=24))
def test_any_unexposed_name_is_refused(name: str) -> None:
    exposed_names = {"gold", "silver", "fct_assignments", "profiles", "dim_team"}
    name = name.replace('"', "")
    if not name.strip() or name.lower() in exposed_names:
        return
    for sql in (f'select * from "{name}"', f'select * from gold."{name}"'):
        with pytest.raises(QueryRefused, match=r"is not exposed"):
            guard_query(sql, EXPOSED, max_rows=1)


# -- refused: parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "parameters", "reason"),
    [
        ("select $a, $b", {"a": 1}, "parameters not supplied: b"),
        ("select $a", {"a": 1, "z": 2, "y": 3}, "parameters supplied but not used: y, z"),
        ("select 1", {"a": 1}, "parameters supplied but not used: a"),
        ("select $a", {"a": [1, 2]}, "parameter 'a' is a list; use null, bool, number or str"),
        ("select $a", {"a": {"k": 1}}, "parameter 'a' is a dict"),
        ("select $a", {"a": b"x"}, "parameter 'a' is a bytes"),
        ("select $a", {"a": object()}, "parameter 'a' is a object"),
        ("select ?", {}, "positional parameter '?' is not allowed; use $name"),
        ("select $1", {"1": 1}, "positional parameter '$1' is not allowed"),
    ],
)
def test_refuses_bad_parameters(sql: str, parameters: dict[str, object], reason: str) -> None:
    assert refused(sql, parameters).startswith(reason)


def test_refuses_a_str_subclass_parameter() -> None:
    class Sneaky(str):
        __slots__ = ()

    assert refused("select $a", {"a": Sneaky("x")}).startswith("parameter 'a' is a Sneaky")


# -- the error and the caller's contract -------------------------------------------------


def test_query_refused_is_a_terminal_strata_error() -> None:
    error = QueryRefused("function 'x' is not allowed")
    assert isinstance(error, Terminal)
    assert error.reason == str(error) == "function 'x' is not allowed"


@pytest.mark.parametrize("max_rows", [-1, True, 1.5])
def test_rejects_a_bad_max_rows(max_rows: object) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        guard_query("select 1", EXPOSED, max_rows=max_rows)  # type: ignore[arg-type]


@pytest.mark.parametrize("exposed", [["gold"], ["a.b.c"], ["gold."], "gold.a"])
def test_rejects_a_bad_exposed_list(exposed: list[str] | str) -> None:
    with pytest.raises(ValueError, match="exposed"):
        guard_query("select 1", exposed, max_rows=1)


# -- the regenerated SQL is vetted too ---------------------------------------------------


def transpile(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    """Make the guard's SQL generator rewrite ``old`` into ``new``, as a sqlglot generator
    that transpiles a node into other SQL would."""
    real = guard_module._generate
    monkeypatch.setattr(guard_module, "_generate", lambda tree: real(tree).replace(old, new))


def test_sql_a_generator_transpiles_into_is_vetted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    transpile(monkeypatch, "LOWER(", "READ_TEXT(")
    assert refused("select lower('/etc/passwd')") == "function 'READ_TEXT' is not allowed"


def test_regenerated_sql_must_read_what_was_vetted(monkeypatch: pytest.MonkeyPatch) -> None:
    transpile(monkeypatch, "LOWER('x')", "(SELECT MAX(id) FROM gold.fct_assignments)")
    assert refused("select lower('x')") == "query cannot be regenerated safely; simplify it"
