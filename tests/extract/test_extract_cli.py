"""``strata extract``: a summary table on success, one line and exit 2 on failure."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from strata.cli import app

SOURCE = """\
name: shop
url: ${SHOP_URL}
scope: eu1
tables:
  - entity: items
    table: items
    watermark: {column: id, kind: id}
    tenant_column: tenant_id
    primary_key: [id]
    chunk_rows: 40
"""


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "sources").mkdir(parents=True)
    (root / "strata.toml").write_text(
        'name = "shop"\nlake_url = "./lake"\ncatalog_url = "sqlite:///.strata/catalog.db"\n'
    )
    (root / "sources" / "shop.yml").write_text(SOURCE)
    return root


def test_extract_prints_a_summary_and_fails_in_one_line(
    tmp_path: Path, source_url: str, source_engine: sa.Engine
) -> None:
    with source_engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, tenant_id VARCHAR(20), name VARCHAR(20))"
        )
        conn.execute(
            sa.text("INSERT INTO items VALUES (:id, :t, :n)"),
            [{"id": i, "t": f"t{i % 2}", "n": f"n{i}"} for i in range(1, 101)],
        )
    root = _project(tmp_path)
    env = {"SHOP_URL": source_url, "COLUMNS": "200", "STRATA_LAKE": None}
    runner = CliRunner()

    result = runner.invoke(app, ["extract", "shop", "--project", str(root)], env=env)
    assert result.exit_code == 0, result.output
    assert "items" in result.output
    assert "100" in result.output
    assert "— → 100" in result.output
    parts = sorted((root / "lake").rglob("part-*.jsonl.gz"))
    assert len(parts) == 3
    assert "scope=eu1/entity=items/ingestion_date=" in str(parts[0])

    with source_engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items DROP COLUMN tenant_id")
    result = runner.invoke(app, ["extract", "shop", "--project", str(root)], env=env)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "source 'shop', entity 'items'" in lines[0]
    assert "'tenant_id'" in lines[0]

    result = runner.invoke(app, ["extract", "nope", "--project", str(root)], env=env)
    assert result.exit_code == 2
    assert "no source 'nope'" in result.output
