"""``strata extract``: a summary table on success, one line and exit 2 on failure, for SQL
and REST sources alike."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner
from vendor_server import VendorServer

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


PIPEDRIVE = """\
name: pipedrive
kind: rest
base_url: ${VENDOR_URL}/v1
scope: acme-eu
params: {api_token: "${PIPEDRIVE_TOKEN}"}
retries: {max_attempts: 2, backoff_seconds: 0.01}
entities:
  - entity: deals
    path: /deals
    records: data
    pagination: {type: offset, offset_param: start, limit_param: limit, limit: 20,
                 more: additional_data.pagination.more_items_in_collection}
    incremental: {param: since, watermark_field: update_time, format: "%Y-%m-%d %H:%M:%S"}
    tenant_field: account_id
    primary_key: [id]
    lookback: 10m
  - entity: persons
    path: /persons
    records: data
    pagination: {type: page, size_param: per_page, size: 10}
    tenant_field: account_id
    primary_key: [id]
"""


def test_extract_a_rest_source_prints_a_summary_and_fails_in_one_line(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "sources" / "pipedrive.yml").write_text(PIPEDRIVE)
    runner = CliRunner()
    with VendorServer(deals=45, persons=12) as vendor:
        env = {
            "VENDOR_URL": vendor.url,
            "PIPEDRIVE_TOKEN": vendor.token,
            "COLUMNS": "200",
            "STRATA_LAKE": None,
        }
        result = runner.invoke(app, ["extract", "pipedrive", "--project", str(root)], env=env)
        assert result.exit_code == 0, result.output
        assert "pipedrive (run " in result.output
        assert "deals" in result.output
        assert "persons" in result.output
        assert "— → 2026-01-01T12:45:00+00:00" in result.output
        assert len(sorted((root / "lake").rglob("entity=deals/*/*/part-*.jsonl.gz"))) == 1
        assert all(r.params.get("api_token") == vendor.token for r in vendor.requests)

        result = runner.invoke(
            app,
            ["extract", "pipedrive", "--project", str(root), "--entity", "persons"],
            env=env | {"PIPEDRIVE_TOKEN": "expired-token-0000"},
        )
        assert result.exit_code == 2
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1
        assert lines[0].startswith(
            "error: source 'pipedrive', entity 'persons': bad credentials: "
            "GET /v1/persons?api_token=***&page=1&per_page=10 answered 401 Unauthorized"
        ), lines[0]
        assert "expired-token" not in result.output
