"""The quality gate end to end: ``strata run`` checks each new table version before it is
published, ``strata check`` runs checks on demand, results are kept, alerts are posted."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from strata.catalog.store import Catalog
from strata.cli.main import app
from strata.lake.paths import BronzePartition
from strata.quality.gate import run_checked
from strata.transform.config import ProjectError
from strata.transform.project import load_project, validate_project
from strata.transform.scaffold import init_project
from strata.transform.tables import read_table, table_path, table_version
from support.profiles import PROFILE_COLUMNS

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
SCHEMA = pa.schema(
    [(c, pa.string()) for c in PROFILE_COLUMNS] + [("ingested_at", pa.timestamp("us", "UTC"))]
)

CHECKS = """
checks:
  - not_null: email
  - format: {column: email, type: email}
  - accepted_values: {column: status, values: [active, inactive], severity: warn}
  - unique: [company_id, id]
"""


def profile(
    id_: str, company: str, email: str | None, status: str = "active", hours: int = 0
) -> dict[str, Any]:
    return {
        "id": id_,
        "company_id": company,
        "rut": "1-9",
        "first_name": f"Name{id_}",
        "last_name": "Doe",
        "email": email,
        "phone": None,
        "job_title": "driver",
        "status": status,
        "hired_on": "2024-01-02",
        "created_at": "2024-01-02 10:00:00",
        "updated_at": "2024-01-02 10:00:00",
        "deleted_at": None,
        "ingested_at": T0 + dt.timedelta(hours=hours),
    }


def write_bronze(root: Path, tenant: str, rows: list[dict[str, Any]]) -> None:
    rel = BronzePartition("wfm", "profiles", tenant, T0.date()).file(uuid.uuid4()).path
    path = root / "lake" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = init_project(tmp_path / "proj", "proj")
    yml = root / "models" / "silver" / "profiles.yml"
    yml.write_text(yml.read_text() + CHECKS)
    write_bronze(root, "acme", [profile("1", "acme", "a@x.com"), profile("2", "acme", "b@x.com")])
    write_bronze(root, "globex", [profile("3", "globex", "c@y.com")])
    return root


def catalog_of(root: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{root / '.strata' / 'catalog.db'}")


def silver_ids(root: Path) -> set[str]:
    table = read_table(table_path(root / "lake", "silver", "profiles")).to_table()
    return set(table.column("id").to_pylist())


def test_passing_checks_publish_and_results_are_kept_per_tenant(root: Path) -> None:
    summary = run_checked(root)
    assert summary.ok, summary.failed
    with catalog_of(root) as catalog:
        results = catalog.latest_check_results(table="silver.profiles")
        assert {(r.check, r.tenant, r.status) for r in results} == {
            (check, tenant, "pass")
            for check in (
                "not_null_email",
                "format_email",
                "accepted_values_status",
                "unique_company_id_id",
            )
            for tenant in ("acme", "globex")
        }
        assert all(r.published and r.run_id == summary.run_id for r in results)
        version = catalog.latest_table_version("silver.profiles")
        assert version is not None
        assert {r.table_version for r in results} == {version.version}


def test_an_error_check_withholds_the_version_and_skips_downstream(root: Path) -> None:
    assert run_checked(root).ok
    before = table_version(table_path(root / "lake", "silver", "profiles"))
    write_bronze(root, "globex", [profile("4", "globex", "not-an-email", hours=1)])

    summary = run_checked(root)

    status = {r.name: r.status for r in summary.results}
    assert status == {"profiles": "failed", "dim_workers": "skipped"}
    error = summary.result("profiles").error or ""
    assert "format_email" in error
    assert "globex" in error
    assert silver_ids(root) == {"1", "2", "3"}  # readers keep the previous rows
    with catalog_of(root) as catalog:
        assert catalog.latest_table_version("silver.profiles").version == before  # type: ignore[union-attr]
        failing = [
            r for r in catalog.latest_check_results(table="silver.profiles") if r.status != "pass"
        ]
        assert [(r.check, r.tenant, r.failing, r.published) for r in failing] == [
            ("format_email", "globex", 1, False)
        ]
        assert failing[0].samples[0]["id"] == "4"  # the failing row, of that tenant
        assert catalog.get_run(summary.run_id).status == "failed"

    # The bad bronze stays unconsumed: once it is corrected, the next run picks both up.
    write_bronze(root, "globex", [profile("4", "globex", "d@y.com", hours=2)])
    again = run_checked(root)
    assert again.ok, again.failed
    assert silver_ids(root) == {"1", "2", "3", "4"}


def test_a_first_build_that_fails_its_checks_leaves_no_table(tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj", "proj")
    yml = root / "models" / "silver" / "profiles.yml"
    yml.write_text(yml.read_text() + CHECKS)
    write_bronze(root, "acme", [profile("1", "acme", None)])
    summary = run_checked(root)
    assert summary.result("profiles").status == "failed"
    assert "not_null_email" in (summary.result("profiles").error or "")
    assert table_version(table_path(root / "lake", "silver", "profiles")) is None


def test_warnings_do_not_block_and_are_posted_to_the_webhook(root: Path) -> None:
    with WebhookReceiver() as hook:
        toml = root / "strata.toml"
        toml.write_text(
            toml.read_text() + f'\n[quality]\nalert_webhook_url = "{hook.url}"\nalert_on = "warn"\n'
            'alert_event_prefix = "melmastoon.analytics"\n'
        )
        write_bronze(root, "acme", [profile("5", "acme", "e@x.com", status="on_leave", hours=1)])
        summary = run_checked(root)
        assert summary.ok, summary.failed
        assert "5" in silver_ids(root)
        [event] = hook.events
    assert event["type"] == "melmastoon.analytics.data_quality.alert.v1"
    assert event["tenant_id"] == "acme"
    payload = event["payload"]
    assert (payload["table"], payload["published"], payload["run_id"]) == (
        "silver.profiles",
        True,
        summary.run_id,
    )
    assert [(c["check"], c["status"], c["failing"]) for c in payload["checks"]] == [
        ("accepted_values_status", "warn", 1)
    ]
    assert "samples" not in json.dumps(payload)


def test_bad_checks_fail_project_load_with_file_and_line(root: Path) -> None:
    yml = root / "models" / "silver" / "profiles.yml"
    yml.write_text(yml.read_text() + "  - not_nul: email\n  - range: {column: nope, min: 1}\n")
    (root / "checks" / "workers.yml").write_text(
        "model: dim_workers\nchecks:\n  - row_count: {min: 5, max: 2}\n"
    )
    problems = [str(p) for p in validate_project(root)]
    assert any(
        p.startswith("models/silver/profiles.yml:")
        and "unknown check type 'not_nul'" in p
        and "did you mean 'not_null'" in p
        for p in problems
    ), problems
    assert any("no column 'nope'" in p for p in problems), problems
    assert any(
        p.startswith("checks/workers.yml:3:") and "min 5 is greater than max 2" in p
        for p in problems
    ), problems
    with pytest.raises(ProjectError):
        load_project(root)


def test_strata_check_and_history(root: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "250", "STRATA_LOG_LEVEL": None})
    assert run_checked(root).ok
    ok = runner.invoke(app, ["check", "--project", str(root)])
    assert ok.exit_code == 0, ok.output
    assert "format_email" in ok.output

    # Data that went bad outside a run (say, a check tightened): check reports, exits 1.
    yml = root / "models" / "silver" / "profiles.yml"
    yml.write_text(yml.read_text() + "  - row_count: {min: 2, name: enough_workers}\n")
    bad = runner.invoke(app, ["check", "--project", str(root), "--select", "profiles"])
    assert bad.exit_code == 1, bad.output
    assert "enough_workers" in bad.output
    assert "error" in bad.output

    history = runner.invoke(
        app, ["check", "history", "silver.profiles", "--project", str(root), "--tenant", "globex"]
    )
    assert history.exit_code == 0, history.output
    assert "enough_workers" in history.output
    assert "acme" not in history.output
    with catalog_of(root) as catalog:
        rows = catalog.check_history("silver.profiles", check="enough_workers")
        assert {(r.tenant, r.status, r.measured) for r in rows} == {
            ("acme", "pass", 2.0),
            ("globex", "error", 1.0),
        }


class WebhookReceiver:
    """A local HTTP endpoint standing in for an alerting service."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                events.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/quality"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_strata_run_reports_the_runs_checks(root: Path) -> None:
    write_bronze(root, "acme", [profile("5", "acme", "e@x.com", status="on_leave", hours=1)])
    runner = CliRunner(env={"COLUMNS": "250", "STRATA_LOG_LEVEL": None})
    result = runner.invoke(app, ["run", "--project", str(root)])
    assert result.exit_code == 0, result.output
    assert "checks: 7 passed, 1 warning(s), 0 error(s)" in result.output
    assert "warn: silver.profiles accepted_values_status (acme): 1 failing" in result.output
