"""Ways out of the tenant's data, tried through the API as acme: every one is a 400 with a
reason, nothing of globex's comes back, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_helpers import SECRET, Keys, TestClient, query

# {globex_file}: one of globex's data files; {globex_dir}: its partition; {out}: a folder
# the server must not write to.
ESCAPES = {
    "read_parquet globex's file": "select * from read_parquet('{globex_file}')",
    "read_parquet globex's partition": "select * from read_parquet('{globex_dir}/*.parquet')",
    "replacement scan of a path": "select * from '{globex_file}'",
    "replacement scan, quoted name": 'select * from "{globex_file}"',
    "path in a join": "select * from gold.dim_workers, read_parquet('{globex_file}')",
    "read_csv": "select * from read_csv('/etc/passwd')",
    "read_text": "select * from read_text('{globex_file}')",
    "glob": "select * from glob('{lake}/**')",
    "parquet_metadata": "select * from parquet_metadata('{globex_file}')",
    "copy to": "copy (select * from gold.dim_workers) to '{out}/x.csv'",
    "copy from": "copy gold.dim_workers from '{globex_file}'",
    "attach": "attach '{out}/x.db' as x",
    "install": "install httpfs",
    "load": "load httpfs",
    "set": "set enable_external_access = true",
    "reset": "reset lock_configuration",
    "pragma": "pragma database_list",
    "information_schema": "select * from information_schema.tables",
    "duckdb_settings()": "select * from duckdb_settings()",
    "duckdb_tables()": "select * from duckdb_tables()",
    "query()": "select * from query('select * from read_parquet(''{globex_file}'')')",
    "query_table()": "select * from query_table('gold.dim_workers')",
    "stacked statements": "select 1; select * from read_parquet('{globex_file}')",
    "stacked set": "select 1; set enable_external_access = true",
    "huge range()": "select count(*) from range(1000000000000)",
    "generate_series()": "select * from generate_series(1, 1000000000000)",
    "current_setting()": "select current_setting('allowed_paths')",
    "getenv()": "select getenv('HOME')",
    "create view": "create view gold.x as select * from read_parquet('{globex_file}')",
    "catalog-qualified": "select * from memory.gold.dim_workers",
    "recursive CTE": (
        "with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r"
    ),
    "lateral table function": "select * from gold.dim_workers, lateral read_csv('{globex_file}')",
}


@pytest.fixture(scope="module")
def paths(project: Path) -> dict[str, str]:
    lake = project / "lake"
    globex_dir = lake / "gold" / "dim_workers" / "company_id=globex"
    return {
        "lake": str(lake),
        "globex_dir": str(globex_dir),
        "globex_file": str(next(globex_dir.glob("*.parquet"))),
    }


@pytest.mark.parametrize("sql", ESCAPES.values(), ids=ESCAPES.keys())
def test_escape_is_refused(
    client: TestClient, keys: Keys, paths: dict[str, str], tmp_path: Path, sql: str
) -> None:
    response = query(client, keys.acme_admin, sql.format(**paths, out=tmp_path))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "query_refused"
    assert error["message"].startswith("query refused: ")
    assert SECRET not in response.text
    assert '"g0"' not in response.text  # a globex worker id as a value
    assert list(tmp_path.iterdir()) == []  # nothing written
    ok = query(client, keys.acme_admin, "select count(*) from gold.dim_workers")
    assert ok.json()["rows"] == [[2]]
