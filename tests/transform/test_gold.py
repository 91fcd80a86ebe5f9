"""``build_gold`` over hand-written silver Delta tables, and ``compile_gold``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from strata.catalog.store import Catalog
from strata.transform.config import ModelConfig
from strata.transform.gold import build_gold, compile_gold, relation_name
from strata.transform.silver import ModelRunError
from strata.transform.sql import DIALECT, parse_model
from strata.transform.tables import read_table, table_path, table_version, write_table


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    people = pa.table(
        {"id": ["1", "2", "3"], "company_id": ["acme", "acme", "globex"], "age": ["30", "x", "5"]}
    )
    write_table(table_path(lake, "silver", "people"), people, "overwrite", ["company_id"])
    return lake


def config(materialized: str = "table", **kw: object) -> ModelConfig:
    return ModelConfig(name="g", layer="gold", materialized=materialized, **kw)  # type: ignore[arg-type]


def rows(lake: Path, name: str = "g") -> list[tuple[object, ...]]:
    table = read_table(table_path(lake, "gold", name)).to_table()
    return sorted(tuple(r.values()) for r in table.to_pylist())


def test_compile_rewrites_references_keeping_aliases() -> None:
    model = parse_model("g", "gold", "select p.id from silver.people as p join people q using (id)")
    sql = compile_gold(model).sql(dialect=DIALECT)
    assert f'"{relation_name("people")}" AS p' in sql
    assert f'"{relation_name("people")}" AS q' in sql
    assert "silver" not in sql


def test_table_overwrites_and_records_version(lake: Path, catalog: Catalog) -> None:
    model = parse_model("g", "gold", "select company_id, count(*) as n from people group by 1")
    result = build_gold(model, config(), lake, catalog, run_id=None)
    assert (result.rows_in, result.rows_out, result.version) == (3, 2, 0)
    assert rows(lake) == [("acme", 2), ("globex", 1)]
    again = build_gold(model, config(), lake, catalog, run_id=None)
    assert again.version == 1
    recorded = catalog.latest_table_version("gold.g")
    assert recorded is not None
    assert (recorded.version, recorded.row_count) == (1, 2)


def test_runtime_error_names_the_model_and_writes_nothing(lake: Path, catalog: Catalog) -> None:
    model = parse_model("g", "gold", "select cast(age as integer) as age from people")
    with pytest.raises(ModelRunError, match="model 'g' failed"):
        build_gold(model, config(), lake, catalog, run_id=None)
    assert table_version(table_path(lake, "gold", "g")) is None
    assert catalog.latest_table_version("gold.g") is None


def test_tenant_partition_keeps_tenants_missing_from_the_output(
    lake: Path, catalog: Catalog
) -> None:
    cfg = config("tenant_partition", partition_by=("company_id",))
    full = parse_model("g", "gold", "select id, company_id from people")
    build_gold(full, cfg, lake, catalog, run_id=None)
    acme = parse_model("g", "gold", "select id || '!' as id, company_id from people where id = '1'")
    build_gold(acme, cfg, lake, catalog, run_id=None)
    assert rows(lake) == [("1!", "acme"), ("3", "globex")]


def test_incremental_merges_on_unique_key(lake: Path, catalog: Catalog) -> None:
    cfg = config("incremental", unique_key=("id",))
    build_gold(
        parse_model("g", "gold", "select id, age from people"), cfg, lake, catalog, run_id=None
    )
    upd = parse_model("g", "gold", "select id, 'new' as age from people where id in ('2', '9')")
    write_table(
        table_path(lake, "silver", "people"),
        pa.table({"id": ["9"], "company_id": ["acme"], "age": ["2"]}),
        "append",
    )
    build_gold(upd, cfg, lake, catalog, run_id=None)
    assert rows(lake) == [("1", "30"), ("2", "new"), ("3", "5"), ("9", "new")]
    dup = parse_model("g", "gold", "select '1' as id, age from people")
    with pytest.raises(ModelRunError, match="repeat"):
        build_gold(dup, cfg, lake, catalog, run_id=None)


def test_missing_upstream_table_fails(tmp_path: Path, catalog: Catalog) -> None:
    model = parse_model("g", "gold", "select * from nothing_yet")
    with pytest.raises(ModelRunError, match="no table yet"):
        build_gold(model, config(), tmp_path / "lake", catalog, run_id=None)
