"""Reading ``checks:`` YAML: every kind's forms, names, and every problem at its file:line."""

from __future__ import annotations

from collections.abc import Collection

import pytest

# strata.transform first: importing strata.quality.parse before it is a circular import
# (parse -> strata.transform -> project -> project_checks -> parse) until project.py
# imports read_checks lazily; reported, not this module's to fix.
import strata.transform  # noqa: F401
from strata.quality.checks import FORMAT_PATTERNS, Bounds, Check
from strata.quality.parse import parse_checks, parse_checks_file
from strata.transform.config import ProjectError, load_yaml

PATH = "models/silver/workers.yml"
MODELS = {"workers": "silver.workers", "sites": "silver.sites"}
WORKER_COLUMNS = frozenset(
    {"company_id", "worker_id", "email", "phone", "status", "score", "site_id", "updated_at"}
)
SITE_COLUMNS = frozenset({"company_id", "site_id", "name"})


def known_columns(table: str) -> Collection[str] | None:
    return {"silver.workers": WORKER_COLUMNS, "silver.sites": SITE_COLUMNS}.get(table)


def unknown_columns(table: str) -> Collection[str] | None:
    return None


def parse(text: str, *, columns_known: bool = False) -> tuple[list[Check], list[str]]:
    """The checks of a model YAML whose first line is ``checks:``, and the problems."""
    problems: list[ProjectError] = []
    root = load_yaml(text, PATH)
    assert isinstance(root.value, dict)
    checks = parse_checks(
        root.value["checks"],
        "silver.workers",
        PATH,
        problems,
        resolve=MODELS.get,
        columns=known_columns if columns_known else unknown_columns,
    )
    return checks, [str(p) for p in problems]


def one(text: str, *, columns_known: bool = False) -> Check:
    checks, problems = parse("checks:\n" + text, columns_known=columns_known)
    assert problems == []
    assert len(checks) == 1
    return checks[0]


def problems_of(text: str, *, columns_known: bool = False) -> list[str]:
    checks, problems = parse("checks:\n" + text, columns_known=columns_known)
    assert checks == []
    return problems


# -- every kind, short and long form -------------------------------------------------------


def test_not_null_short_and_long() -> None:
    short = one("  - not_null: email\n")
    assert (short.kind, short.columns, short.name) == ("not_null", ("email",), "not_null_email")
    assert (short.table, short.severity, short.max_failures, short.where) == (
        "silver.workers",
        "error",
        0,
        None,
    )
    assert (short.path, short.line, short.location) == (PATH, 2, f"{PATH}:2")
    long = one("  - not_null:\n      column: email\n      max_failures: 2\n")
    assert (long.columns, long.max_failures, long.line) == (("email",), 2, 2)


def test_unique_single_compound_and_long() -> None:
    assert one("  - unique: email\n").columns == ("email",)
    compound = one("  - unique: [company_id, worker_id]\n")
    assert compound.columns == ("company_id", "worker_id")
    assert compound.name == "unique_company_id_worker_id"
    assert one("  - unique: {columns: [a, b], max_failures: 1}\n").max_failures == 1
    assert one("  - unique: {column: email}\n").columns == ("email",)
    assert problems_of("  - unique: [a, b, a]\n") == [f"{PATH}:2: columns: 'a' is listed twice"]
    assert problems_of("  - unique: {columns: []}\n") == [
        f"{PATH}:2: columns must name at least one column"
    ]


def test_accepted_values() -> None:
    check = one("  - accepted_values: {column: status, values: [active, 1, 2.5, true]}\n")
    assert (check.name, check.columns) == ("accepted_values_status", ("status",))
    assert check.values == ("active", 1, 2.5, True)
    assert problems_of("  - accepted_values: status\n") == [
        f"{PATH}:2: accepted_values needs a non-empty list of values"
    ]
    assert problems_of("  - accepted_values: {column: status, values: []}\n") == [
        f"{PATH}:2: accepted_values needs a non-empty list of values"
    ]
    assert problems_of(
        "  - accepted_values:\n      column: status\n      values:\n        - a\n        - null\n"
    ) == [f"{PATH}:6: accepted values must be text, numbers or booleans"]
    assert problems_of("  - accepted_values: {column: status, values: [[a]]}\n") == [
        f"{PATH}:2: accepted values must be text, numbers or booleans"
    ]


def test_relationships() -> None:
    check = one("  - relationships: {column: site_id, to: sites, field: site_id}\n")
    assert (check.to_table, check.to_column) == ("silver.sites", "site_id")
    assert check.name == "relationships_site_id__silver_sites"
    same_name = one("  - relationships: {column: site_id, to: sites}\n")
    assert same_name.to_column == "site_id"  # field defaults to the column's own name
    assert problems_of("  - relationships: site_id\n") == [
        f"{PATH}:2: relationships takes a mapping of settings (column, to, field, max_failures)"
    ]
    assert problems_of("  - relationships: {column: site_id}\n") == [
        f"{PATH}:2: relationships needs 'to: MODEL' (the table the key must exist in)"
    ]


def test_format_named_and_regex() -> None:
    for name in ("email", "phone", "uuid"):
        check = one(f"  - format: {{column: email, type: {name}}}\n")
        assert (check.format_name, check.pattern) == (name, FORMAT_PATTERNS[name])
        assert check.name == "format_email"
    regex = one("  - format: {column: phone, regex: '^[0-9]+$'}\n")
    assert (regex.format_name, regex.pattern) == ("regex", "^[0-9]+$")
    assert problems_of("  - format: email\n") == [
        f"{PATH}:2: format needs exactly one of 'type' (email, phone, uuid) or 'regex'"
    ]
    assert problems_of("  - format: {column: email, type: email, regex: 'x'}\n") == [
        f"{PATH}:2: format needs exactly one of 'type' (email, phone, uuid) or 'regex'"
    ]


def test_range() -> None:
    check = one("  - range: {column: score, min: -5, max: 99.5}\n")
    assert check.bounds == Bounds(-5.0, 99.5)
    assert one("  - range: {column: score, min: 0}\n").bounds == Bounds(0.0, None)
    assert problems_of("  - range: score\n") == [
        f"{PATH}:2: range takes a mapping of settings (column, min, max, max_failures)"
    ]
    assert problems_of("  - range: {column: score}\n") == [f"{PATH}:2: range needs min and/or max"]
    assert problems_of("  - range: {column: score, min: low}\n") == [
        f"{PATH}:2: min must be a number, not 'low'"
    ]


def test_expression_short_long_and_default_names() -> None:
    checks, problems = parse(
        "checks:\n"
        '  - expression: "end_date IS NULL OR end_date >= start_date"\n'
        "  - expression: {sql: score > 0, max_failures: 3}\n"
    )
    assert problems == []
    assert [(c.name, c.sql, c.max_failures) for c in checks] == [
        ("expression_1", "end_date IS NULL OR end_date >= start_date", 0),
        ("expression_2", "score > 0", 3),
    ]
    assert problems_of("  - expression: {max_failures: 1}\n") == [
        f"{PATH}:2: expression needs sql: a boolean SQL expression true for good rows"
    ]


def test_row_count() -> None:
    assert one("  - row_count: {min: 1}\n").bounds == Bounds(1.0, None)
    assert one("  - row_count: {min: 1, max: 10}\n").bounds == Bounds(1.0, 10.0)
    assert problems_of("  - row_count: 5\n") == [
        f"{PATH}:2: row_count takes a mapping of settings (min, max)"
    ]
    assert problems_of("  - row_count: {min: 1.5}\n") == [
        f"{PATH}:2: min must be a whole number >= 0, not 1.5"
    ]


def test_freshness() -> None:
    check = one("  - freshness: {column: updated_at, warn_after: 90m, error_after: 2d}\n")
    assert (check.warn_after_s, check.error_after_s) == (5400.0, 172800.0)
    only_error = one("  - freshness: {column: updated_at, error_after: 30s}\n")
    assert (only_error.warn_after_s, only_error.error_after_s) == (None, 30.0)
    assert one("  - freshness: {column: updated_at, warn_after: 1.5h}\n").warn_after_s == 5400.0
    assert problems_of("  - freshness: updated_at\n") == [
        f"{PATH}:2: freshness needs warn_after and/or error_after (e.g. 24h)"
    ]


def test_duplicate_count() -> None:
    short = one("  - duplicate_count: email\n")
    assert (short.columns, short.bounds, short.name) == (
        ("email",),
        Bounds(None, 0.0),
        "duplicate_count_email",
    )
    long = one("  - duplicate_count: {columns: [email, phone], max: 5}\n")
    assert (long.columns, long.bounds) == (("email", "phone"), Bounds(None, 5.0))


def test_null_rate() -> None:
    check = one("  - null_rate: {column: phone, max: 0.25}\n")
    assert (check.columns, check.bounds, check.name) == (
        ("phone",),
        Bounds(None, 0.25),
        "null_rate_phone",
    )
    assert problems_of("  - null_rate: phone\n") == [
        f"{PATH}:2: null_rate needs max: the highest share of NULLs, 0 to 1"
    ]


def test_distinct_count() -> None:
    assert one("  - distinct_count: {column: status, min: 2, max: 5}\n").bounds == Bounds(2, 5)
    assert problems_of("  - distinct_count: status\n") == [
        f"{PATH}:2: distinct_count needs min and/or max"
    ]


def test_schema() -> None:
    check = one(
        "  - schema:\n"
        "      columns: {worker_id: INTEGER, email: varchar, score: 'DECIMAL(10,2)'}\n"
        "      allow_extra: false\n"
    )
    assert dict(check.expected_columns) == {
        "worker_id": "INT",
        "email": "TEXT",
        "score": "DECIMAL(10, 2)",
    }
    assert check.allow_extra_columns is False
    assert check.name == "schema"
    assert one("  - schema: {columns: {a: DATE}}\n").allow_extra_columns is True
    assert problems_of("  - schema: {columns: {}}\n") == [
        f"{PATH}:2: schema needs columns: {{name: TYPE, ...}}"
    ]
    assert problems_of("  - schema: {}\n") == [
        f"{PATH}:2: schema needs columns: {{name: TYPE, ...}}"
    ]
    assert problems_of("  - schema: {columns: {a: DATE}, allow_extra: maybe}\n") == [
        f"{PATH}:2: allow_extra must be true or false"
    ]
    assert problems_of("  - schema: {columns: {a: DATE}, where: a > 1}\n") == [
        f"{PATH}:2: schema checks the table's columns: no where"
    ]


def test_drift_kinds() -> None:
    defaults = one("  - row_count_drift:\n")
    assert (defaults.name, defaults.window, defaults.min_history) == ("row_count_drift", 7, 3)
    assert (defaults.warn_change, defaults.error_change) == (0.1, 0.3)
    tuned = one("  - row_count_drift: {window: 14, warn: 0.2, error: 0.5, min_history: 5}\n")
    assert (tuned.window, tuned.min_history, tuned.warn_change, tuned.error_change) == (
        14,
        5,
        0.2,
        0.5,
    )
    # A window shorter than the default history needed is judged once it is full.
    assert one("  - row_count_drift: {window: 2}\n").min_history == 2
    nulls = one("  - null_rate_drift: phone\n")
    assert (nulls.kind, nulls.columns, nulls.name) == (
        "null_rate_drift",
        ("phone",),
        "null_rate_drift_phone",
    )
    assert one("  - null_rate_drift: {column: phone, window: 3}\n").window == 3


# -- common settings -----------------------------------------------------------------------


def test_name_severity_and_where() -> None:
    check = one(
        "  - not_null:\n"
        "      column: email\n"
        "      name: email_present\n"
        "      severity: warn\n"
        "      where: status = 'active'\n"
    )
    assert (check.name, check.severity, check.where) == (
        "email_present",
        "warn",
        "status = 'active'",
    )
    assert problems_of("  - not_null: {column: email, severity: fatal}\n") == [
        f"{PATH}:2: severity must be warn or error, not 'fatal'"
    ]
    assert problems_of("  - not_null: {column: email, name: Bad-Name}\n")[0].startswith(
        f"{PATH}:2: name: "
    )


def test_where_is_normalized_sql() -> None:
    assert one("  - row_count: {min: 1, where: \"status='x'\"}\n").where == "status = 'x'"


def test_duplicate_names_are_reported_at_the_second_check() -> None:
    checks, problems = parse(
        "checks:\n"
        "  - row_count: {min: 1}\n"
        "  - row_count: {max: 10}\n"
        "  - not_null: email\n"
        "  - unique: {column: email, name: not_null_email}\n"
    )
    assert [c.name for c in checks] == ["row_count", "not_null_email"]
    assert problems == [
        f"{PATH}:3: check 'row_count' is declared twice on silver.workers "
        "(give one a different name:)",
        f"{PATH}:5: check 'not_null_email' is declared twice on silver.workers "
        "(give one a different name:)",
    ]


def test_lines_point_at_each_check() -> None:
    checks, problems = parse(
        "checks:\n"
        "  - not_null: email\n"
        "\n"
        "  - accepted_values:\n"
        "      column: status\n"
        "      values: [a]\n"
        "  - row_count: {min: 1}\n"
    )
    assert problems == []
    assert [c.line for c in checks] == [2, 4, 7]


# -- problems ------------------------------------------------------------------------------


def test_unknown_check_type_suggests_the_closest() -> None:
    assert problems_of("  - not_nul: email\n") == [
        f"{PATH}:2: unknown check type 'not_nul' (did you mean 'not_null'?)"
    ]
    problems = problems_of("  - banana:\n      column: email\n")
    assert problems[0].startswith(f"{PATH}:2: unknown check type 'banana' (expected one of: ")


def test_a_check_is_one_key_mapping() -> None:
    assert problems_of("  - {not_null: email, unique: email}\n") == [
        f"{PATH}:2: a check is a mapping with one key, its kind (got not_null, unique)"
    ]
    assert problems_of("  - not_null\n") == [
        f"{PATH}:2: a check must be a mapping of keys to values",
        f"{PATH}:2: 'not_null' needs a column or settings: see the docs",
    ]
    assert problems_of("  - not_null:\n") == [f"{PATH}:2: not_null needs a column"]
    assert problems_of("  - unique:\n") == [f"{PATH}:2: unique needs columns"]
    checks, problems = parse("checks: {not_null: email}\n")
    assert (checks, problems) == ([], [f"{PATH}:1: checks must be a list, one check per item"])


def test_unknown_setting_suggests_the_closest() -> None:
    assert problems_of("  - not_null: {column: email, severty: warn}\n") == [
        f"{PATH}:2: unknown key 'severty' (did you mean 'severity'?)"
    ]


def test_missing_columns_when_the_model_columns_are_known() -> None:
    assert problems_of("  - not_null: emial\n", columns_known=True) == [
        f"{PATH}:2: silver.workers has no column 'emial' (did you mean 'email'?)"
    ]
    assert problems_of("  - unique: [company_id, nope]\n", columns_known=True)[0].startswith(
        f"{PATH}:2: silver.workers has no column 'nope'"
    )
    assert problems_of("  - expression:\n      sql: scroe > 0\n", columns_known=True) == [
        f"{PATH}:3: expression: silver.workers has no column 'scroe' (did you mean 'score'?)"
    ]
    assert problems_of("  - row_count: {min: 1, where: \"stat = 'x'\"}\n", columns_known=True) == [
        f"{PATH}:2: where: silver.workers has no column 'stat' (did you mean 'status'?)"
    ]
    # Not known (a SELECT * model): accepted here, checked when the table is checked.
    assert one("  - not_null: emial\n").columns == ("emial",)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "  - not_null: {column: email, max_failures: -1}\n",
            "max_failures must be a whole number >= 0, not -1",
        ),
        (
            "  - not_null: {column: email, max_failures: 1.5}\n",
            "max_failures must be a whole number >= 0, not 1.5",
        ),
        ("  - row_count: {min: -1}\n", "min must be a whole number >= 0, not -1"),
        ("  - row_count: {min: true}\n", "min must be a whole number >= 0, not True"),
        ("  - row_count: {min: 10, max: 5}\n", "row_count: min 10 is greater than max 5"),
        ("  - range: {column: score, min: 10, max: -5}\n", "range: min 10 is greater than max -5"),
        (
            "  - distinct_count: {column: status, min: 3, max: 2}\n",
            "distinct_count: min 3 is greater than max 2",
        ),
        ("  - null_rate: {column: phone, max: 1.5}\n", "max must be a number from 0 to 1, not 1.5"),
        (
            "  - null_rate: {column: phone, max: -0.1}\n",
            "max must be a number from 0 to 1, not -0.1",
        ),
        (
            "  - duplicate_count: {columns: [email], max: -2}\n",
            "max must be a whole number >= 0, not -2",
        ),
        (
            "  - freshness: {column: updated_at, warn_after: 24 hours}\n",
            "warn_after must be a duration like 30m, 24h or 2d, not '24 hours'",
        ),
        (
            "  - freshness: {column: updated_at, error_after: 3600}\n",
            "error_after must be a duration like 30m, 24h or 2d, not 3600",
        ),
        (
            "  - freshness: {column: updated_at, warn_after: 2d, error_after: 1d}\n",
            "warn_after must not be longer than error_after",
        ),
        ("  - row_count_drift: {warn: 0.5, error: 0.2}\n", "warn must not exceed error"),
        ("  - row_count_drift: {window: 0}\n", "window and min_history must be at least 1"),
        (
            "  - row_count_drift: {window: 3, min_history: 5}\n",
            "min_history 5 is more than the window of 3 runs",
        ),
        ("  - row_count_drift: {warn: -0.1}\n", "warn must be a number >= 0, not -0.1"),
    ],
)
def test_bad_thresholds(text: str, problem: str) -> None:
    assert problems_of(text) == [f"{PATH}:2: {problem}"]


def test_bad_thresholds_are_located_at_their_own_line() -> None:
    assert problems_of(
        "  - freshness:\n      column: updated_at\n      warn_after: 2d\n      error_after: 1 day\n"
    ) == [f"{PATH}:5: error_after must be a duration like 30m, 24h or 2d, not '1 day'"]
    assert problems_of("  - range:\n      column: score\n      min: 5\n      max: 1\n") == [
        f"{PATH}:4: range: min 5 is greater than max 1"
    ]


def test_invalid_regex() -> None:
    problems = problems_of("  - format: {column: phone, regex: '([0-9]'}\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"{PATH}:2: regex '([0-9]' is not a valid pattern: ")
    # Valid in Python, not in DuckDB's RE2, where the check runs: caught here, not later.
    lookahead = problems_of("  - format: {column: phone, regex: '(?=1)[0-9]+'}\n")
    assert lookahead == [
        f"{PATH}:2: regex '(?=1)[0-9]+' is not a valid pattern: invalid perl operator: (?="
    ]


def test_unknown_format_type() -> None:
    assert problems_of("  - format: {column: email, type: postcode}\n") == [
        f"{PATH}:2: format type 'postcode' is not one of email, phone, uuid"
    ]


@pytest.mark.parametrize("sql", ["end_date >=", ")(", "score = = 1", "a b c"])
def test_expression_that_is_not_sql(sql: str) -> None:
    problems = problems_of(f'  - expression: "{sql}"\n')
    assert len(problems) == 1
    assert problems[0].startswith(f"{PATH}:2: expression is not valid SQL: ")


@pytest.mark.parametrize(
    ("sql", "shown"),
    [("score + 1", "score + 1"), ("score > > 1", "score >> 1"), ("'yes'", "'yes'"), ("(1)", "(1)")],
)
def test_expression_that_is_no_condition(sql: str, shown: str) -> None:
    assert problems_of(f'  - expression: "{sql}"\n') == [
        f"{PATH}:2: expression must be a condition, true or false for each row "
        f"(like score >= 0), not {shown}"
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "is_active",
        "NOT is_active",
        "regexp_matches(email, '@')",
        "score IS DISTINCT FROM 0",
        "CAST(flag AS BOOLEAN)",
        "(score > 0 AND score < 10) OR score IS NULL",
    ],
)
def test_expression_conditions_are_accepted(sql: str) -> None:
    assert one(f'  - expression: "{sql}"\n').sql is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "DROP TABLE silver.workers",
        "DELETE FROM silver.workers",
        "UPDATE workers SET score = 0",
        "score > 0; DROP TABLE x",
    ],
)
def test_expression_that_is_a_statement(sql: str) -> None:
    assert problems_of(f'  - expression: "{sql}"\n') == [
        f"{PATH}:2: expression must be one boolean SQL expression, not a statement"
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "score > (SELECT avg(score) FROM workers)",
        "EXISTS (SELECT 1 FROM sites)",
        "count(*) > 1",
        "score > avg(score)",
        "row_number() OVER (ORDER BY score) = 1",
    ],
)
def test_expression_with_a_subquery_aggregate_or_window(sql: str) -> None:
    assert problems_of(f'  - expression: "{sql}"\n') == [
        f"{PATH}:2: expression must test one row: no subqueries, aggregates or windows"
    ]
    assert problems_of(f'  - row_count: {{min: 1, where: "{sql}"}}\n') == [
        f"{PATH}:2: where must test one row: no subqueries, aggregates or windows"
    ]


def test_relationships_to_an_unknown_model_or_field() -> None:
    assert problems_of("  - relationships: {column: site_id, to: plants}\n") == [
        f"{PATH}:2: relationships: no model 'plants' in this project"
    ]
    assert problems_of(
        "  - relationships:\n      column: site_id\n      to: sites\n      field: site_key\n",
        columns_known=True,
    ) == [
        f"{PATH}:5: relationships: silver.sites has no column 'site_key' (did you mean 'site_id'?)"
    ]
    # Without field: the column's own name must exist in the target.
    assert problems_of(
        "  - relationships: {column: worker_id, to: sites}\n", columns_known=True
    ) == [
        f"{PATH}:2: relationships: silver.sites has no column 'worker_id' "
        "(expected one of: company_id, name, site_id)"
    ]


def test_schema_with_a_bad_type() -> None:
    assert problems_of(
        "  - schema:\n      columns:\n        worker_id: INTEGER\n        email: NOT_A_TYPE\n"
    ) == [f"{PATH}:5: 'NOT_A_TYPE' is not a SQL type"]
    assert problems_of("  - schema: {columns: {email: 5}}\n") == [
        f"{PATH}:2: type of email must be text, not 5"
    ]


def test_every_problem_is_collected_not_raised() -> None:
    checks, problems = parse(
        "checks:\n"
        "  - not_nul: email\n"
        "  - not_null: email\n"
        "  - row_count: {min: -1}\n"
        "  - format: {column: email, type: fax}\n"
    )
    assert [c.name for c in checks] == ["not_null_email"]
    assert [p.split(": ", 1)[0] for p in problems] == [f"{PATH}:2", f"{PATH}:4", f"{PATH}:5"]


def test_no_checks_node() -> None:
    problems: list[ProjectError] = []
    assert (
        parse_checks(
            None, "silver.workers", PATH, problems, resolve=MODELS.get, columns=unknown_columns
        )
        == []
    )
    assert problems == []


# -- checks/*.yml --------------------------------------------------------------------------


def parse_file(text: str) -> tuple[str | None, list[Check], list[str]]:
    problems: list[ProjectError] = []
    table, checks = parse_checks_file(
        load_yaml(text, "checks/workers.yml"),
        "checks/workers.yml",
        problems,
        resolve=MODELS.get,
        columns=known_columns,
    )
    return table, checks, [str(p) for p in problems]


def test_checks_file() -> None:
    table, checks, problems = parse_file(
        "model: workers\nchecks:\n  - not_null: email\n  - row_count: {min: 1}\n"
    )
    assert problems == []
    assert table == "silver.workers"
    assert [(c.name, c.table, c.path, c.line) for c in checks] == [
        ("not_null_email", "silver.workers", "checks/workers.yml", 3),
        ("row_count", "silver.workers", "checks/workers.yml", 4),
    ]


def test_checks_file_problems() -> None:
    assert parse_file("checks:\n  - not_null: email\n") == (
        None,
        [],
        ["checks/workers.yml:1: a checks file needs 'model: NAME' (the model it checks)"],
    )
    assert parse_file("model: plants\nchecks: []\n") == (
        None,
        [],
        ["checks/workers.yml:1: no model 'plants' in this project"],
    )
    assert parse_file("model: workers\n") == (
        "silver.workers",
        [],
        ["checks/workers.yml:1: a checks file needs a 'checks:' list"],
    )
    table, checks, problems = parse_file(
        "model: workers\ntests: []\nchecks:\n  - not_null: emial\n"
    )
    assert (table, checks) == ("silver.workers", [])
    assert problems == [
        "checks/workers.yml:2: unknown key 'tests' (expected one of: checks, model)",
        "checks/workers.yml:4: silver.workers has no column 'emial' (did you mean 'email'?)",
    ]
    assert parse_file("- not_null: email\n")[2] == [
        "checks/workers.yml:1: a checks file must be a mapping of keys to values"
    ]
