"""Silver over bronze landed by extractors (seed 003): jsonl.gz and Parquet parts written with
the extractor's own ``write_part`` into a local lake, read with line-level lineage, deduped
by extract run, built incrementally, and scoped to one tenant."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import itertools
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.catalog.store import Catalog
from strata.core.identifiers import NAME_RULE
from strata.extract.landing import part_path, read_part, run_prefix, write_part
from strata.lake.storage import LocalStorage
from strata.transform.config import ExtractedSource, ModelConfig, load_yaml, parse_model_config
from strata.transform.engine import TenantScope, build_connection
from strata.transform.errors import ModelSqlError
from strata.transform.extracted import (
    ExtractedPart,
    PartPath,
    extracted_parts,
    ingestion_times,
    parse_part_path,
)
from strata.transform.project import validate_project
from strata.transform.runner import prepare_project
from strata.transform.silver import ModelRunError, build_silver, compile_silver
from strata.transform.sql import ModelSql, parse_model
from strata.transform.tables import read_table, table_path, table_version

SQL = """
select
    company_id,
    cast(id as bigint) as contact_id,
    name,
    cast(amount as decimal(12, 2)) as amount,
    cast(updated_at as timestamptz) as updated_at
from bronze.crm.contacts
"""
DAY = dt.date(2024, 5, 1)
T0 = dt.datetime(2024, 5, 1, 9, tzinfo=dt.UTC)


class Clock:
    """The catalog's clock, moved by hand, so each extract run starts when a test says."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return int(self.now.timestamp() * 1_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog(tmp_path: Path, clock: Clock) -> Iterator[Catalog]:  # overrides conftest's: a clock
    cat = Catalog.open("sqlite:///" + str(tmp_path / "catalog.db"), clock=clock)
    yield cat
    cat.close()


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def storage(lake: Path) -> LocalStorage:
    return LocalStorage(lake, fsync=False)


@pytest.fixture
def model() -> ModelSql:
    return parse_model("contacts", "silver", SQL)


@pytest.fixture
def config() -> ModelConfig:
    return ModelConfig(
        name="contacts",
        layer="silver",
        materialized="incremental",
        primary_key=("company_id", "contact_id"),
        source=ExtractedSource("crm", "contacts"),
    )


def contact(id_: int, name: str, *, tenant: str = "acme", amount: str = "1.50") -> dict[str, Any]:
    """One source row as the extractor lands it (the tenant column duplicated as _tenant)."""
    return {
        "id": id_,
        "account": tenant,
        "name": name,
        "amount": decimal.Decimal(amount),
        "updated_at": T0 + dt.timedelta(minutes=id_),
        "_tenant": tenant,
    }


def extract(
    storage: LocalStorage,
    catalog: Catalog,
    *parts: list[dict[str, Any]],
    fmt: str = "jsonl.gz",
    entity: str = "contacts",
    day: dt.date = DAY,
    run_id: str | None = None,
) -> list[str]:
    """Land ``parts`` as one extract run (recorded in the catalog unless ``run_id`` is given);
    returns the part paths."""
    run = run_id or catalog.start_run("extract", {"source": "crm"})
    prefix = run_prefix("crm", "eu1", entity, day, run)
    paths = []
    for number, records in enumerate(parts):
        path = part_path(prefix, number, fmt)  # type: ignore[arg-type]
        write_part(storage, path, records)
        paths.append(path)
    if run_id is None:
        catalog.finish_run(run, "succeeded")
    return paths


def silver_rows(lake: Path) -> dict[int, dict[str, Any]]:
    rows = read_table(table_path(lake, "silver", "contacts")).to_table().to_pylist()
    by_id = {row["contact_id"]: row for row in rows}
    assert len(by_id) == len(rows), "a primary key is in the table twice"
    return by_id


def test_reads_jsonl_and_parquet_parts_of_one_entity_with_line_lineage(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    jsonl = extract(storage, catalog, [contact(1, "ann"), contact(2, "bob", amount="20.05")])
    parquet = extract(
        storage, catalog, [contact(3, "cy", tenant="globex"), contact(4, "di")], fmt="parquet"
    )
    extract(storage, catalog, [contact(9, "not a contact")], entity="accounts")
    # Other files under the source are not parts of the entity.
    (lake / "bronze/crm/scope=eu1/entity=contacts/notes.txt").write_text("hello")

    result = build_silver(model, config, lake, catalog)

    assert (result.rows_in, result.rows_out, result.files_read) == (4, 4, 2)
    rows = silver_rows(lake)
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[2]["amount"] == decimal.Decimal("20.05")  # decimal text cast, no float on the way
    assert rows[2]["updated_at"] == T0 + dt.timedelta(minutes=2)  # ISO text cast, UTC
    assert rows[3]["amount"] == decimal.Decimal("1.50")  # a Parquet part's native decimal
    assert {i: r["company_id"] for i, r in rows.items()} == {
        1: "acme",
        2: "acme",
        3: "globex",
        4: "acme",
    }
    assert rows[1]["_bronze_file"] == jsonl[0]
    assert rows[4]["_bronze_file"] == parquet[0]
    assert (rows[1]["_bronze_row"], rows[2]["_bronze_row"]) == (1, 2)  # 1-based lines
    assert (rows[3]["_bronze_row"], rows[4]["_bronze_row"]) == (1, 2)  # 1-based rows
    for id_, row in rows.items():  # each row points at the record it came from
        assert read_part(storage, row["_bronze_file"])[row["_bronze_row"] - 1]["id"] == id_
    assert rows[1]["ingested_at"] == T0  # the extract run's start (the clock did not move)


def test_line_numbers_hold_across_many_parts_and_lines(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    counter = itertools.count(1)
    parts = [[contact(next(counter), f"c{n}") for _ in range(1500 + 250 * n)] for n in range(6)]
    paths = extract(storage, catalog, *parts)

    build_silver(model, config, lake, catalog)

    rows = silver_rows(lake)
    assert len(rows) == sum(len(p) for p in parts)
    lines = {path: read_part(storage, path) for path in paths}
    for id_, row in rows.items():
        assert lines[row["_bronze_file"]][row["_bronze_row"] - 1]["id"] == id_


def test_the_latest_extraction_of_a_key_wins_whatever_the_path_order(
    lake: Path,
    storage: LocalStorage,
    catalog: Catalog,
    clock: Clock,
    model: ModelSql,
    config: ModelConfig,
) -> None:
    # Run ids are random: start runs until a later one sorts before the first, so the path
    # order (which a tie falls back to) disagrees with the order of the runs.
    first = catalog.start_run("extract")
    later = first
    while later >= first:
        clock.now += dt.timedelta(minutes=5)
        later = catalog.start_run("extract")
    extract(storage, catalog, [contact(1, "old"), contact(2, "old")], run_id=first)
    # Within one part the later line wins.
    twice = [contact(3, "first line"), contact(3, "second line")]
    extract(storage, catalog, [contact(1, "new")], twice, run_id=later)

    build_silver(model, config, lake, catalog)

    rows = silver_rows(lake)
    assert {i: r["name"] for i, r in rows.items()} == {1: "new", 2: "old", 3: "second line"}
    assert rows[1]["ingested_at"] == clock.now


def test_an_older_extraction_landing_late_does_not_undo_a_newer_one(
    lake: Path,
    storage: LocalStorage,
    catalog: Catalog,
    clock: Clock,
    model: ModelSql,
    config: ModelConfig,
) -> None:
    early = catalog.start_run("extract")  # e.g. a slow run still writing its parts
    clock.now += dt.timedelta(hours=1)
    extract(storage, catalog, [contact(1, "new")])
    build_silver(model, config, lake, catalog)

    extract(storage, catalog, [contact(1, "old"), contact(2, "old")], run_id=early)
    result = build_silver(model, config, lake, catalog)

    assert result.files_read == 1
    assert {i: r["name"] for i, r in silver_rows(lake).items()} == {1: "new", 2: "old"}


def test_a_second_extraction_is_read_incrementally(
    lake: Path,
    storage: LocalStorage,
    catalog: Catalog,
    clock: Clock,
    model: ModelSql,
    config: ModelConfig,
) -> None:
    extract(storage, catalog, [contact(i, f"c{i}") for i in range(1, 6)], [contact(6, "c6")])
    first = build_silver(model, config, lake, catalog)
    assert (first.files_read, first.rows_in) == (2, 6)

    # The next run, a day later: two changed rows, a new one, and the lookback re-reading an
    # unchanged row (a duplicate by primary key, which dedupes away).
    clock.now += dt.timedelta(days=1)
    next_day = DAY + dt.timedelta(days=1)
    update = [contact(2, "changed", amount="99.99"), contact(5, "c5"), contact(7, "c7")]
    new_parts = extract(
        storage, catalog, update, [contact(4, "changed too")], fmt="parquet", day=next_day
    )
    second = build_silver(model, config, lake, catalog)

    assert (second.files_read, second.rows_in) == (2, 4)
    rows = silver_rows(lake)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    assert (rows[2]["name"], rows[2]["amount"]) == ("changed", decimal.Decimal("99.99"))
    assert rows[4]["name"] == "changed too"
    assert rows[2]["_bronze_file"] == new_parts[0]
    assert rows[5]["_bronze_file"] == new_parts[0]  # re-read by the lookback: the newer copy
    assert rows[1]["ingested_at"] == T0
    assert rows[2]["ingested_at"] == clock.now

    third = build_silver(model, config, lake, catalog)
    assert (third.files_read, third.run_id) == (0, None)


def test_a_full_refresh_reads_every_part_again(
    lake: Path,
    storage: LocalStorage,
    catalog: Catalog,
    clock: Clock,
    model: ModelSql,
    config: ModelConfig,
) -> None:
    extract(storage, catalog, [contact(1, "old"), contact(2, "old")])
    build_silver(model, config, lake, catalog)
    clock.now += dt.timedelta(hours=1)
    extract(storage, catalog, [contact(1, "new")], fmt="parquet")
    build_silver(model, config, lake, catalog)
    incremental = silver_rows(lake)

    refreshed = build_silver(model, config, lake, catalog, full_refresh=True)

    assert (refreshed.files_read, refreshed.rows_in, refreshed.rows_out) == (2, 3, 2)
    assert silver_rows(lake) == incremental
    assert incremental[1]["name"] == "new"


def test_a_malformed_line_names_its_file_and_line_and_publishes_nothing(
    lake: Path,
    storage: LocalStorage,
    catalog: Catalog,
    clock: Clock,
    model: ModelSql,
    config: ModelConfig,
) -> None:
    extract(storage, catalog, [contact(1, "ann")])
    build_silver(model, config, lake, catalog)
    clock.now += dt.timedelta(hours=1)
    good, bad = extract(storage, catalog, [contact(2, "bob")], [contact(3, "cy")])
    lines = [
        b'{"id":3,"name":"cy","_tenant":"acme"}',
        b'{"id":4,"name":"di","_tenant":"acme"}',
        b'{"id":5,"name": oops,"_tenant":"acme"}',
        b'{"id":6,"name":"ed","_tenant":"acme"}',
    ]
    (lake / bad).write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))

    with pytest.raises(ModelRunError) as raised:
        build_silver(model, config, lake, catalog)

    assert f"bronze part {bad} line 3: not valid JSON" in str(raised.value)
    assert table_version(table_path(lake, "silver", "contacts")) == 0
    assert sorted(silver_rows(lake)) == [1]
    unconsumed = catalog.new_files("contacts", [(good, 1), (bad, 1)])
    assert [f.path for f in unconsumed] == [good, bad]
    assert catalog.list_runs(kind="transform", limit=1)[0].status == "failed"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id":1}\n[1, 2]\n', "line 2: not a JSON object but list"),
        (b'{"id":1}\n{"id":2}\n{"id":3', "line 3: not valid JSON"),
        (b'{"id":1}\n\xff\xfe\n', "line 2: not valid JSON"),
    ],
)
def test_a_record_that_is_not_a_json_object_is_refused(
    lake: Path,
    storage: LocalStorage,
    catalog: Catalog,
    model: ModelSql,
    config: ModelConfig,
    content: bytes,
    expected: str,
) -> None:
    (path,) = extract(storage, catalog, [contact(1, "ann")])
    (lake / path).write_bytes(gzip.compress(content))

    with pytest.raises(ModelRunError, match=f"bronze part {path} {expected}"):
        build_silver(model, config, lake, catalog)
    assert table_version(table_path(lake, "silver", "contacts")) is None


def test_a_truncated_part_is_named(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    (path,) = extract(storage, catalog, [contact(i, "x" * 50) for i in range(1, 200)])
    data = (lake / path).read_bytes()
    (lake / path).write_bytes(data[: len(data) // 2])

    with pytest.raises(ModelRunError, match=f"bronze part {path}"):
        build_silver(model, config, lake, catalog)


def test_a_tenant_run_reads_only_its_rows_and_leaves_the_parts_for_the_rest(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    mixed = [contact(1, "a1"), contact(2, "g2", tenant="globex"), contact(3, "a3")]
    (path,) = extract(storage, catalog, mixed)

    scoped = build_silver(model, config, lake, catalog, scope=TenantScope("company_id", "acme"))

    assert scoped.rows_in == 2
    assert {i: r["company_id"] for i, r in silver_rows(lake).items()} == {1: "acme", 3: "acme"}
    assert [f.path for f in catalog.new_files("contacts", [(path, 1)])] == [path]

    everyone = build_silver(model, config, lake, catalog)
    assert everyone.rows_in == 3
    assert sorted(silver_rows(lake)) == [1, 2, 3]
    assert catalog.new_files("contacts", [(path, 1)]) == []


def test_the_tenant_field_replaces_a_record_column_named_like_the_tenant_key(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    record = {**contact(1, "ann", tenant="7"), "company_id": 7}  # the database's integer
    extract(storage, catalog, [record])

    build_silver(model, config, lake, catalog)

    assert silver_rows(lake)[1]["company_id"] == "7"  # text, like every tenant in the lake


def test_a_column_no_part_holds_is_null(
    lake: Path, storage: LocalStorage, catalog: Catalog, config: ModelConfig
) -> None:
    model = parse_model(
        "contacts",
        "silver",
        "select company_id, cast(id as bigint) as contact_id, "
        "cast(closed_at as timestamptz) as closed_at from bronze.crm.contacts",
    )
    extract(storage, catalog, [contact(1, "ann")])

    build_silver(model, config, lake, catalog)

    assert silver_rows(lake)[1]["closed_at"] is None


def test_a_record_column_named_like_a_lineage_column_is_refused(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    extract(storage, catalog, [{**contact(1, "ann"), "ingested_at": T0}])

    with pytest.raises(ModelRunError, match=r"crm.contacts hold column\(s\) \['ingested_at'\]"):
        build_silver(model, config, lake, catalog)


def test_a_model_may_read_the_tenant_field_by_name(
    lake: Path, storage: LocalStorage, catalog: Catalog, config: ModelConfig
) -> None:
    model = parse_model(
        "contacts",
        "silver",
        "select company_id, _tenant as owner, cast(id as bigint) as contact_id "
        "from bronze.crm.contacts",
    )
    extract(storage, catalog, [contact(1, "ann", tenant="globex")])

    build_silver(model, config, lake, catalog)

    assert silver_rows(lake)[1]["owner"] == "globex"


def test_parts_without_records_are_consumed_without_a_build(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    empty = extract(storage, catalog, []) + extract(storage, catalog, [], fmt="parquet")

    nothing = build_silver(model, config, lake, catalog)

    assert (nothing.files_read, nothing.rows_in, nothing.version) == (2, 0, None)
    assert catalog.new_files("contacts", [(p, 1) for p in empty]) == []
    extract(storage, catalog, [contact(1, "ann")])
    assert build_silver(model, config, lake, catalog).rows_in == 1


def test_a_scope_reads_only_its_parts(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    extract(storage, catalog, [contact(1, "eu")])
    other = run_prefix("crm", "us1", "contacts", DAY, catalog.start_run("extract"))
    write_part(storage, part_path(other, 0), [contact(2, "us")])
    eu_only = ModelConfig(
        name="contacts",
        layer="silver",
        materialized="incremental",
        primary_key=("company_id", "contact_id"),
        source=ExtractedSource("crm", "contacts", scope="eu1"),
    )

    build_silver(model, eu_only, lake, catalog)
    assert sorted(silver_rows(lake)) == [1]
    every_scope = extracted_parts(storage, ExtractedSource("crm", "contacts"))
    assert {p.where.scope for p in every_scope} == {"eu1", "us1"}


def test_reading_parts_needs_no_extension_download(
    lake: Path, storage: LocalStorage, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    with build_connection() as con:
        settings = con.execute(
            "select current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions')"
        ).fetchall()
        modes = dict(
            con.execute(
                "select extension_name, install_mode from duckdb_extensions() "
                "where extension_name in ('json', 'parquet')"
            ).fetchall()
        )
    assert settings == [(False, False)]
    assert modes == {"json": "STATICALLY_LINKED", "parquet": "STATICALLY_LINKED"}
    extract(storage, catalog, [contact(1, "ann")])
    extract(storage, catalog, [contact(2, "bob")], fmt="parquet")
    assert build_silver(model, config, lake, catalog).rows_in == 2


def test_a_run_the_catalog_does_not_know_is_ingested_at_midnight_of_its_date(
    catalog: Catalog,
) -> None:
    known = catalog.start_run("extract")
    parts = [
        ExtractedPart(PartPath("crm", "eu1", "contacts", DAY, known, 0, "jsonl.gz"), 1),
        ExtractedPart(PartPath("crm", "eu1", "contacts", DAY, "copied-run", 0, "jsonl.gz"), 1),
    ]

    times = ingestion_times(catalog, parts)

    assert times == {
        parts[0].path: T0,
        parts[1].path: dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
    }


# -- paths -------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@given(
    source=names,
    scope=names,
    entity=names,
    day=st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
    run_id=st.uuids().map(str),
    number=st.integers(0, 10_000),
    fmt=st.sampled_from(["jsonl.gz", "parquet"]),
)
def test_part_paths_parse_back_to_what_the_extractor_wrote(
    source: str, scope: str, entity: str, day: dt.date, run_id: str, number: int, fmt: Any
) -> None:
    path = part_path(run_prefix(source, scope, entity, day, run_id), number, fmt)

    assert parse_part_path(path) == PartPath(source, scope, entity, day, run_id, number, fmt)


@pytest.mark.parametrize(
    "path",
    [
        f"wfm/profiles/tenant=acme/year=2024/month=05/day=01/{uuid.uuid4()}.parquet",
        "bronze/crm/scope=eu1/entity=contacts/ingestion_date=2024-05-01/run_id=r/part-01.jsonl.gz",
        "bronze/crm/scope=eu1/entity=contacts/ingestion_date=2024-02-30/run_id=r/part-0.jsonl.gz",
        "bronze/crm/scope=eu1/entity=contacts/ingestion_date=2024-05-01/run_id=r/part-0.json",
        "bronze/crm/scope=eu1/entity=contacts/ingestion_date=2024-05-01/part-0.jsonl.gz",
        "bronze/crm/entity=contacts/ingestion_date=2024-05-01/run_id=r/part-0.jsonl.gz",
    ],
)
def test_other_files_are_not_parts(path: str) -> None:
    assert parse_part_path(path) is None


# -- config ------------------------------------------------------------------------------


def _parse(text: str, layer: Any = "silver") -> tuple[ModelConfig | None, list[str]]:
    problems: list[Any] = []
    node = load_yaml(textwrap.dedent(text), "m.yml")
    config = parse_model_config("m", layer, node, "m.yml", "tenant", problems)
    return config, [str(p) for p in problems]


def test_yaml_declares_an_extracted_source() -> None:
    config, problems = _parse("primary_key: id\nsource: {extract: crm, entity: contacts}\n")
    assert problems == []
    assert config is not None
    assert config.source == ExtractedSource("crm", "contacts", None, tenant_key="tenant")
    scoped, _ = _parse(
        "primary_key: id\nsource:\n  extract: crm\n  entity: contacts\n  scope: eu1\n"
    )
    assert scoped is not None
    assert scoped.source is not None
    assert scoped.source.scope == "eu1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "primary_key: id\nsource: {extract: crm}\n",
            "m.yml:2: source needs 'entity' (the entity to read): "
            "{extract: <source>, entity: <entity>}",
        ),
        (
            "primary_key: id\nsource:\n  entity: contacts\n",
            "m.yml:2: source needs 'extract' (the extracted source's name): "
            "{extract: <source>, entity: <entity>}",
        ),
        (
            "primary_key: id\nsource:\n  extract: crm\n  entity: contacts\n  entty: x\n",
            "m.yml:5: unknown key 'entty' (did you mean 'entity'?)",
        ),
        (
            "primary_key: id\nsource: crm.contacts\n",
            "m.yml:2: source must be a mapping like {extract: <source>, entity: <entity>}, "
            "not 'crm.contacts'",
        ),
        (
            "primary_key: id\nsource: {extract: CRM, entity: contacts}\n",
            f"m.yml:2: source.extract: invalid source 'CRM': {NAME_RULE}",
        ),
    ],
)
def test_yaml_source_problems_name_file_and_line(text: str, expected: str) -> None:
    config, problems = _parse(text)
    assert (config, problems) == (None, [expected])


def test_a_gold_model_cannot_declare_an_extracted_source() -> None:
    _, problems = _parse("source: {extract: crm, entity: contacts}\n", layer="gold")
    assert problems == ["m.yml:1: 'source' applies to silver models only"]


def _project(root: Path, sql: str) -> Path:
    files: Mapping[str, str] = {
        "strata.toml": 'name = "crm"\n',
        "models/silver/contacts.sql": sql,
        "models/silver/contacts.yml": "primary_key: [company_id, contact_id]\n"
        "source: {extract: crm, entity: contacts}\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_sql_must_read_the_source_its_yaml_declares(tmp_path: Path) -> None:
    root = _project(tmp_path, SQL.replace("bronze.crm.contacts", "bronze.crm.people"))
    assert validate_project(root, environ={}) == []

    with pytest.raises(
        ModelSqlError, match=r"its SQL reads bronze\.crm\.people; read bronze\.crm\.contacts"
    ):
        prepare_project(root)
    model = parse_model("contacts", "silver", SQL.replace("contacts", "people"))
    config = ModelConfig(
        "contacts",
        "silver",
        "incremental",
        ("contact_id",),
        source=ExtractedSource("crm", "contacts"),
    )
    with pytest.raises(ModelSqlError):
        compile_silver(model, config, "batch")
