from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core.errors import ConfigError
from strata.transform import (
    ColumnDoc,
    ExploreDimension,
    ModelConfig,
    ProjectError,
    load_project,
    validate_project,
)
from strata.transform.config import load_yaml

BASE = {
    "strata.toml": 'name = "acme"\n',
    "models/silver/profiles.sql": "select id, company_id, deleted_at from bronze.wfm.profiles\n",
    "models/silver/profiles.yml": """\
        primary_key: id
        soft_delete_column: deleted_at
        """,
    "models/gold/dim_workers.sql": "select id as worker_id, company_id from silver.profiles\n",
    "models/gold/dim_workers.yml": """\
        description: Workers.
        columns:
          worker_id:
            description: The worker.
          company_id:
          email:
            pii: true
        """,
    "models/gold/fct_assignments.sql": "select id, company_id, worker_id from silver.profiles\n",
    "models/gold/fct_assignments.yml": """\
        materialized: incremental
        unique_key: [company_id, id]
        partition_by: company_id
        """,
    "explores/assignments.yml": """\
        description: Who works where.
        fact: fct_assignments
        dimensions:
          - model: dim_workers
            fact_key: worker_id
            dimension_key: worker_id
        """,
}


def write(root: Path, changes: dict[str, str | None] | None = None) -> Path:
    """The BASE project with ``changes`` applied (``None`` removes a file)."""
    files: dict[str, str | None] = {**BASE, **(changes or {})}
    for rel, text in files.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def problems(root: Path, changes: dict[str, str | None]) -> list[str]:
    return [str(e) for e in validate_project(write(root, changes), environ={})]


def test_loads_models_explores_and_defaults(tmp_path: Path) -> None:
    project = load_project(
        write(tmp_path, {"models/gold/dim_sites.sql": "select 1 as x\n"}), environ={}
    )
    assert project.root == tmp_path.resolve()
    assert project.config.name == "acme"
    assert project.config.tenant_key == "company_id"
    assert project.config.lake_url == str(tmp_path.resolve() / "lake")
    assert project.config.catalog_url == f"sqlite:///{tmp_path.resolve()}/.strata/catalog.db"
    assert [m.name for m in project.layer("silver")] == ["profiles"]
    assert sorted(project.models) == ["dim_sites", "dim_workers", "fct_assignments", "profiles"]

    profiles = project.models["profiles"]
    assert profiles.sql_path == tmp_path.resolve() / "models/silver/profiles.sql"
    assert profiles.sql_text.startswith("select id")
    assert profiles.config.materialized == "incremental"
    assert profiles.config.primary_key == ("id",)
    assert profiles.config.soft_delete_column == "deleted_at"

    no_yaml = project.models["dim_sites"].config  # gold YAML is optional
    assert (no_yaml.materialized, no_yaml.partition_by) == ("table", ("company_id",))
    assert not no_yaml.declares_column("company_id")  # a default partition_by declares nothing

    workers = project.models["dim_workers"].config
    assert workers.columns["email"] == ColumnDoc("", pii=True)
    assert workers.columns["company_id"] == ColumnDoc()
    fact = project.models["fct_assignments"].config
    assert (fact.unique_key, fact.partition_by) == (("company_id", "id"), ("company_id",))

    explore = project.explores["assignments"]
    assert explore.fact == "fct_assignments"
    assert explore.dimensions == (ExploreDimension("dim_workers", ("worker_id",), ("worker_id",)),)


def test_tenant_key_comes_from_strata_toml(tmp_path: Path) -> None:
    toml = 'name = "acme"\ntenant_key = "tenant_id"\n'
    project = load_project(
        write(tmp_path, {"strata.toml": toml, "explores/assignments.yml": None}), environ={}
    )
    assert project.models["dim_workers"].config.partition_by == ("tenant_id",)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    toml = 'name = "acme"\nlake_url = "s3://from-file/lake"\ncatalog_url = "sqlite:///file.db"\n'
    root = write(tmp_path, {"strata.toml": toml})
    from_file = load_project(root, environ={"STRATA_LAKE": "  "}).config  # blank is unset
    assert from_file.lake_url == "s3://from-file/lake"
    assert from_file.catalog_url == f"sqlite:///{tmp_path.resolve()}/file.db"

    env = {"STRATA_LAKE": "abfs://env/lake", "STRATA_CATALOG_URL": "sqlite:///state/c.db"}
    config = load_project(root, environ=env).config
    assert config.lake_url == "abfs://env/lake"
    assert config.catalog_url == f"sqlite:///{tmp_path.resolve()}/state/c.db"


def test_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_LAKE", "data")
    monkeypatch.setenv("STRATA_CATALOG_URL", "postgresql://strata@db/strata")
    config = load_project(write(tmp_path)).config
    assert config.lake_url == str(tmp_path.resolve() / "data")
    assert config.catalog_url == "postgresql://strata@db/strata"


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path, environ={})
    assert info.value.path == "strata.toml"
    assert info.value.line is None
    assert str(info.value) == (
        f"strata.toml: not found in {tmp_path.resolve()}; `strata init` creates a project"
    )
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('name = "acme"\nname2 = \n', "strata.toml:2: not valid TOML: Invalid value"),
        (
            'name = "acme"\n\ntenant_kye = "x"\n',
            "strata.toml:3: unknown key 'tenant_kye' (did you mean 'tenant_key'?)",
        ),
        (
            'name = "acme"\n[serv]\nport = 1\n',
            "strata.toml:2: unknown key 'serv' (did you mean 'serve'?)",
        ),
        ('tenant_key = "company_id"\n', "strata.toml: missing 'name' (the project's name)"),
        (
            'name = "Acme"\n',
            "strata.toml:1: name: invalid project 'Acme': must match [a-z][a-z0-9_]{0,62}: "
            "lowercase letter first, then lowercase letters, digits or '_'",
        ),
        ('name = "acme"\nlake_url = 3\n', "strata.toml:2: lake_url must be text, not 3"),
        (
            'name = "acme"\ncatalog_url = "mysql://x/y"\n',
            "strata.toml:2: catalog URL 'mysql://x/y': unsupported database 'mysql' "
            "(use sqlite:///path/catalog.db or postgresql://user@host/db)",
        ),
        (
            'name = "acme"\nmodels_dir = "../elsewhere"\n',
            "strata.toml:2: models_dir must be a folder inside the project, not '../elsewhere'",
        ),
    ],
)
def test_project_file_errors(tmp_path: Path, toml: str, expected: str) -> None:
    assert problems(tmp_path, {"strata.toml": toml})[0] == expected


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    env = {"STRATA_CATALOG_URL": "mysql://x/y"}
    assert [str(e) for e in validate_project(write(tmp_path), environ=env)] == [
        "$STRATA_CATALOG_URL: catalog URL 'mysql://x/y': unsupported database 'mysql' "
        "(use sqlite:///path/catalog.db or postgresql://user@host/db)"
    ]


GOLD = "models/gold/fct_assignments.yml"
SILVER = "models/silver/profiles.yml"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {GOLD: "description: x\nmaterialized: increment\n"},
            f"{GOLD}:2: materialized 'increment' is not one of table, incremental, "
            "tenant_partition",
        ),
        (
            {GOLD: "partition_by: company_id\nmaterialized: incremental\n"},
            f"{GOLD}:2: materialized 'incremental' needs a unique_key to merge on",
        ),
        (
            {GOLD: "partition_by: company_id\nunique_key: id\n"},
            f"{GOLD}:2: unique_key is only used with materialized 'incremental'",
        ),
        (
            {GOLD: "materialized: tenant_partition\npartition_by: [region]\n"},
            f"{GOLD}:2: materialized 'tenant_partition' needs 'company_id' in partition_by",
        ),
        (
            {GOLD: "partition_by: company_id\nsoft_delete_column: deleted_at\n"},
            f"{GOLD}:2: 'soft_delete_column' applies to silver models only",
        ),
        (
            {GOLD: "partition_by: company_id\nprimay_key: id\n"},
            f"{GOLD}:2: unknown key 'primay_key' (did you mean 'primary_key'?)",
        ),
        (
            {GOLD: "partition_by: company_id\nflavour: red\n"},
            f"{GOLD}:2: unknown key 'flavour' (expected one of: checks, columns, description, "
            "materialized, partition_by, primary_key, unique_key)",
        ),
        ({GOLD: "- a\n- b\n"}, f"{GOLD}:1: a model config must be a mapping of keys to values"),
        (
            {GOLD: "partition_by: company_id\npartition_by: id\n"},
            f"{GOLD}:2: 'partition_by' is set twice",
        ),
        (
            {GOLD: "partition_by: [company_id\n"},
            f"{GOLD}:2: not valid YAML: expected ',' or ']', but got '<stream end>'",
        ),
        ({GOLD: "partition_by: []\n"}, f"{GOLD}:1: partition_by must name at least one column"),
        ({GOLD: "partition_by: {a: 1}\n"}, f"{GOLD}:1: partition_by must be text, not a mapping"),
        (
            {GOLD: "description: [a]\npartition_by: company_id\n"},
            f"{GOLD}:1: description must be text, not a list",
        ),
        (
            {SILVER: "soft_delete_column: deleted_at\n"},
            f"{SILVER}:1: silver models need a primary_key (Strata dedupes by it)",
        ),
        (
            {SILVER: "primary_key: [id, Rut]\n"},
            f"{SILVER}:1: primary_key: invalid column 'Rut': must match [a-z][a-z0-9_]{{0,62}}: "
            "lowercase letter first, then lowercase letters, digits or '_'",
        ),
        (
            {SILVER: "primary_key: id\nunique_key: id\n"},
            f"{SILVER}:2: 'unique_key' applies to gold models only",
        ),
        (
            {SILVER: "primary_key: id\nmaterialized: table\n"},
            f"{SILVER}:2: 'materialized' applies to gold models only",
        ),
        (
            {SILVER: "primary_key: id\ncolumns:\n  rut:\n    pii: yes please\n"},
            f"{SILVER}:4: pii must be true or false, not 'yes please'",
        ),
        (
            {SILVER: "primary_key: id\ncolumns:\n  rut:\n    descripton: x\n"},
            f"{SILVER}:4: unknown key 'descripton' (did you mean 'description'?)",
        ),
        (
            {SILVER: "primary_key: id\ncolumns:\n  - rut\n"},
            f"{SILVER}:2: columns must be a mapping of keys to values",
        ),
        (
            {SILVER: "primary_key: id\ncolumns:\n  1: {}\n"},
            f"{SILVER}:3: keys must be text, got 1",
        ),
        (
            {"models/silver/profiles.yml": None},
            "models/silver/profiles.sql: silver model 'profiles' needs "
            "models/silver/profiles.yml with its primary_key (Strata dedupes by it)",
        ),
        ({"models/gold/empty.sql": "  \n"}, "models/gold/empty.sql: the model's SQL is empty"),
        (
            {"models/gold/orphan.yml": "x: 1\n"},
            "models/gold/orphan.yml: no models/gold/orphan.sql beside it",
        ),
        (
            {"models/gold/dim_x.sql": "select 1", "models/gold/dim_x.yaml": ""},
            "models/gold/dim_x.yaml: model configs end in .yml: rename it to dim_x.yml",
        ),
        (
            {"models/staging/stg.sql": "select 1"},
            "models/staging/stg.sql: models belong directly in models/silver/ or models/gold/",
        ),
        (
            {"models/gold/Fct-X.sql": "select 1"},
            "models/gold/Fct-X.sql: invalid model 'Fct-X': must match [a-z][a-z0-9_]{0,62}: "
            "lowercase letter first, then lowercase letters, digits or '_' "
            "(the file name is the model's name)",
        ),
        (
            {"models/gold/profiles.sql": "select 1"},
            "models/gold/profiles.sql: model 'profiles' is also defined in "
            "models/silver/profiles.sql",
        ),
    ],
)
def test_model_errors(tmp_path: Path, changes: dict[str, str | None], expected: str) -> None:
    assert problems(tmp_path, changes) == [expected]


EXPLORE = "explores/assignments.yml"


@pytest.mark.parametrize(
    ("explore", "expected"),
    [
        (
            "fact: fct_asignments\n",
            f"{EXPLORE}:1: fact 'fct_asignments' is not a model (did you mean 'fct_assignments'?)",
        ),
        (
            "fact: profiles\n",
            f"{EXPLORE}:1: fact 'profiles' is a silver model; explores are built on gold models",
        ),
        ("description: x\n", f"{EXPLORE}:1: explore needs a fact"),
        (
            "fact: fct_assignments\nfacts: x\n",
            f"{EXPLORE}:2: unknown key 'facts' (did you mean 'fact'?)",
        ),
        (
            "fact: fct_assignments\ndimensions: dim_workers\n",
            f"{EXPLORE}:2: dimensions must be a list",
        ),
        (
            "fact: fct_assignments\ndimensions:\n  - model: dim_workers\n    fact_key: worker_id\n",
            f"{EXPLORE}:3: dimension needs a dimension_key",
        ),
        (
            "fact: fct_assignments\ndimensions:\n  - fact_key: a\n    dimension_key: a\n",
            f"{EXPLORE}:3: dimension needs a model",
        ),
        (
            "fact: fct_assignments\ndimensions:\n  - model: dim_workers\n"
            "    fact_key: [a, b]\n    dimension_key: a\n",
            f"{EXPLORE}:5: dimension_key has 1 columns but fact_key has 2",
        ),
        (
            "fact: fct_assignments\ndimensions:\n  - model: fct_assignments\n"
            "    fact_key: a\n    dimension_key: a\n",
            f"{EXPLORE}:3: 'fct_assignments' is already the fact of this explore",
        ),
    ],
)
def test_explore_errors(tmp_path: Path, explore: str, expected: str) -> None:
    assert problems(tmp_path, {EXPLORE: explore}) == [expected]


def test_explore_refuses_a_dimension_without_the_tenant_key(tmp_path: Path) -> None:
    found = problems(tmp_path, {"models/gold/dim_workers.yml": "columns:\n  worker_id:\n"})
    assert found == [
        f"{EXPLORE}:4: explore 'assignments' refused: dimension 'dim_workers' does not declare "
        "the tenant key 'company_id' (add it to columns or partition_by in "
        "models/gold/dim_workers.yml)"
    ]


def test_explore_refuses_a_fact_that_only_has_the_default_partitioning(tmp_path: Path) -> None:
    found = problems(tmp_path, {"models/gold/fct_assignments.yml": None})
    assert found == [
        f"{EXPLORE}:2: explore 'assignments' refused: fact 'fct_assignments' does not declare "
        "the tenant key 'company_id' (add it to columns or partition_by in "
        "models/gold/fct_assignments.yml)"
    ]


def test_a_broken_model_is_reported_once_not_again_by_its_explores(tmp_path: Path) -> None:
    found = problems(tmp_path, {GOLD: "materialized: increment\n"})
    assert found == [
        f"{GOLD}:1: materialized 'increment' is not one of table, incremental, tenant_partition"
    ]


def test_validate_collects_every_problem_and_load_raises_the_first(tmp_path: Path) -> None:
    changes: dict[str, str | None] = {
        "strata.toml": 'name = "acme"\nlake = "./lake"\n',
        SILVER: "primay_key: id\nsoft_delete_column: Deleted\n",
        GOLD: "materialized: incremental\npartition_by: company_id\ncolumns:\n  id:\n    pii: 1\n",
        "models/gold/profiles.sql": "select 1",
        EXPLORE: "fact: fct_missing\n",
    }
    root = write(tmp_path, changes)
    found = [str(e) for e in validate_project(root, environ={})]
    assert found == [
        "strata.toml:2: unknown key 'lake' (did you mean 'lake_url'?)",
        f"{SILVER}:1: unknown key 'primay_key' (did you mean 'primary_key'?)",
        f"{SILVER}:2: soft_delete_column: invalid column 'Deleted': must match "
        "[a-z][a-z0-9_]{0,62}: lowercase letter first, then lowercase letters, digits or '_'",
        f"{GOLD}:5: pii must be true or false, not 1",
        "models/gold/profiles.sql: model 'profiles' is also defined in models/silver/profiles.sql",
        f"{EXPLORE}:1: fact 'fct_missing' is not a model",
    ]
    with pytest.raises(ProjectError) as info:
        load_project(root, environ={})
    assert str(info.value) == found[0]
    assert (info.value.path, info.value.line) == ("strata.toml", 2)


def test_model_config_built_in_code_follows_the_same_rules() -> None:
    with pytest.raises(ConfigError, match="silver models need a primary_key"):
        ModelConfig("profiles", "silver", "incremental")
    with pytest.raises(ConfigError, match="needs a unique_key"):
        ModelConfig("fct", "gold", "incremental")
    config = ModelConfig("dim", "gold", "table", columns={"company_id": ColumnDoc()})
    with pytest.raises(TypeError):
        config.columns["x"] = ColumnDoc()  # type: ignore[index]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "# note", "   "]), st.from_regex(r"[a-z]{3,8}", fullmatch=True)
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda pair: pair[1],
    )
)
def test_yaml_keys_keep_their_lines(entries: list[tuple[str, str]]) -> None:
    lines: list[str] = []
    expected: dict[str, int] = {}
    for filler, key in entries:
        lines.append(filler)
        lines.append(f"{key}: value")
        expected[key] = len(lines)
    node = load_yaml("\n".join(lines), "x.yml")
    assert isinstance(node.value, dict)
    assert {key: child.line for key, child in node.value.items()} == expected
