"""The ``strata`` command line, end to end against real files and a lake under tmp_path."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from strata.cli import app
from strata.core.identifiers import TENANT_RULE
from strata.demo import estimate_records

STRATA = Path(sys.executable).parent / "strata"
PEOPLE_CSV = (
    "id,name,score,tenant,seen_at\n"
    "1,Ana,3.5,acme,2024-01-02T10:00:00Z\n"
    "2,Bo,,acme,2024-01-03T10:00:00Z\n"
    "3,Cy,4.25,globex,2024-01-04T10:00:00Z\n"
)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def run(tmp_path: Path, lake: Path) -> CliRunnerCall:
    return CliRunnerCall(lake, tmp_path / "journal")


class CliRunnerCall:
    """Invoke the app in process with a clean environment, a tmp lake and a tmp journal."""

    def __init__(self, lake: Path, journal: Path) -> None:
        self.lake = lake
        self.journal = journal
        self.runner = CliRunner()
        # The journal default comes from the environment too, so no run can touch ./.strata.
        self.env = {
            "STRATA_LAKE": str(lake),
            "STRATA_JOURNAL_DIR": str(journal / "default"),
            "STRATA_LOG_LEVEL": None,
            "COLUMNS": "200",
        }

    def __call__(self, *args: str) -> Result:
        argv = list(args)
        if args and args[0] in ("ingest", "demo"):
            argv += ["--journal-dir", str(self.journal)]
        return self.runner.invoke(app, argv, env=self.env)

    def ingest(self, path: Path, *extra: str) -> Result:
        return self("ingest", str(path), "--namespace", "crm", "--table", "people", *extra)


def lake_rows(lake: Path, table_dir: str = "crm/people") -> list[dict[str, object]]:
    files = sorted((lake / table_dir).rglob("*.parquet"))
    rows: list[dict[str, object]] = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return sorted(rows, key=lambda r: str(r["id"]))


def parquet_files(lake: Path) -> list[Path]:
    return sorted(lake.rglob("*.parquet")) if lake.exists() else []


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


# -- help and globals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["ingest", "demo", "lake", "--log-level", "--log-format", "--version"]),
        (["--help"], ["ingest", "demo", "lake"]),
        (["ingest", "--help"], ["--namespace", "--table", "--tenant-column", "--format", "--lake"]),
        (["lake", "--help"], ["ls"]),
        (["lake", "ls", "--help"], ["--by-tenant", "--json", "--namespace", "STRATA_LAKE"]),
        (["demo", "--help"], ["--seed", "--scale", "--journal-dir"]),
    ],
)
def test_help(run: CliRunnerCall, argv: list[str], expected: list[str]) -> None:
    result = run(*argv)
    assert result.exit_code in (0, 2)  # a bare group shows help with click's usage code
    text = result.stdout + result.stderr
    for word in expected:
        assert word in text


def test_every_command_argument_and_option_has_help() -> None:
    def walk(command: object, path: Sequence[str]) -> None:
        for param in getattr(command, "params", []):
            assert getattr(param, "help", None), (path, param.name)
        assert getattr(command, "help", None), path
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(get_command(app), ["strata"])


def test_version(run: CliRunnerCall) -> None:
    assert ok(run("--version")).stdout.startswith("strata ")


def test_json_logs(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(PEOPLE_CSV)
    result = ok(run("--log-level", "info", "--log-format", "json", "ingest", str(path),
                    "--namespace", "crm", "--table", "people", "--tenant", "acme"))  # fmt: skip
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert logs
    assert all(entry["level"] in ("info", "warning") for entry in logs)


# -- ingest ------------------------------------------------------------------------------------


def test_ingest_csv(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE_CSV)
    result = ok(run.ingest(path, "--tenant", "acme", "--source-service", "crm-sync"))
    assert "Ingested 3 records" in result.stdout
    assert "files written" in result.stdout
    rows = lake_rows(run.lake)
    assert [(r["id"], r["name"], r["score"]) for r in rows] == [
        (1, "Ana", 3.5),
        (2, "Bo", None),
        (3, "Cy", 4.25),
    ]
    assert rows[0]["seen_at"] == dt.datetime(2024, 1, 2, 10, tzinfo=dt.UTC)
    assert {r["source_service"] for r in rows} == {"crm-sync"}
    assert all(r["ingested_at"] is not None for r in rows)
    assert all("tenant=acme" in str(p) for p in parquet_files(run.lake))


def test_ingest_jsonl(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"id": 1, "name": "Ana"}\n\n{"id": 2, "name": "Bo"}\n')
    ok(run.ingest(path, "--tenant", "acme"))
    assert [(r["id"], r["name"]) for r in lake_rows(run.lake)] == [(1, "Ana"), (2, "Bo")]


def test_ingest_parquet_with_explicit_format(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "people.bin"
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", None]}), path)
    ok(run.ingest(path, "--tenant", "acme", "--format", "parquet"))
    assert [(r["id"], r["name"]) for r in lake_rows(run.lake)] == [(1, "a"), (2, "b"), (3, None)]


def test_ingest_tenant_column(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE_CSV)
    result = ok(run.ingest(path, "--tenant-column", "tenant"))
    assert "2 tenants" in result.stdout
    acme = lake_rows(run.lake, "crm/people/tenant=acme")
    globex = lake_rows(run.lake, "crm/people/tenant=globex")
    assert [(r["id"], r["tenant"]) for r in acme] == [(1, "acme"), (2, "acme")]
    assert [(r["id"], r["tenant"]) for r in globex] == [(3, "globex")]


def test_malformed_file_lands_nothing(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 3,\n{"id": 4}\n')
    result = run.ingest(path, "--tenant", "acme")
    assert result.exit_code == 2
    assert "error: " in result.stderr
    assert "bad.jsonl, line 3" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert parquet_files(run.lake) == []


def test_malformed_csv_names_the_row(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,name\n1,a\n2,b,extra\n")
    result = run.ingest(path, "--tenant", "acme")
    assert result.exit_code == 2
    assert "bad.csv, row 3: expected 2 columns, got 3" in result.stderr
    assert parquet_files(run.lake) == []


def test_unstorable_record_names_the_row_and_lands_nothing(
    run: CliRunnerCall, tmp_path: Path
) -> None:
    path = tmp_path / "nan.csv"
    path.write_text("id,score\n1,1.5\n2,nan\n")
    result = run.ingest(path, "--tenant", "acme")
    assert result.exit_code == 2
    assert "nan.csv, row 3: record rejected" in result.stderr
    assert "field 'score'" in result.stderr
    assert parquet_files(run.lake) == []


def test_invalid_tenant_shows_the_rule(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(PEOPLE_CSV)
    result = run.ingest(path, "--tenant", "Acme Corp")
    assert result.exit_code == 2
    assert "error: invalid tenant 'Acme Corp'" in result.stderr
    assert TENANT_RULE in result.stderr
    assert parquet_files(run.lake) == []


def test_invalid_tenant_in_column_names_the_line(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1, "t": "acme"}\n{"id": 2, "t": "ACME"}\n')
    result = run.ingest(path, "--tenant-column", "t")
    assert result.exit_code == 2
    assert "p.jsonl, line 2" in result.stderr
    assert TENANT_RULE in result.stderr
    assert parquet_files(run.lake) == []


@pytest.mark.parametrize("tenant_args", [[], ["--tenant", "acme", "--tenant-column", "t"]])
def test_exactly_one_tenant_option(
    run: CliRunnerCall, tmp_path: Path, tenant_args: list[str]
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(PEOPLE_CSV)
    result = run.ingest(path, *tenant_args)
    assert result.exit_code == 2
    assert "--tenant-column" in result.stderr


def test_invalid_table_name_fails_before_reading(run: CliRunnerCall, tmp_path: Path) -> None:
    result = run("ingest", str(tmp_path / "missing.csv"), "--namespace", "crm",
                 "--table", "People", "--tenant", "acme")  # fmt: skip
    assert result.exit_code == 2
    assert "invalid table 'People'" in result.stderr


def test_missing_file(run: CliRunnerCall, tmp_path: Path) -> None:
    result = run.ingest(tmp_path / "missing.csv", "--tenant", "acme")
    assert result.exit_code == 2
    assert "missing.csv: no such file" in result.stderr


def test_empty_file_lands_nothing(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    assert "no records" in ok(run.ingest(path, "--tenant", "acme")).stdout
    assert parquet_files(run.lake) == []


# -- lake ls -------------------------------------------------------------------------------


def test_lake_ls_table_and_json(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE_CSV)
    ok(run.ingest(path, "--tenant-column", "tenant"))
    other = tmp_path / "orders.jsonl"
    other.write_text("".join(f'{{"id": {i}}}\n' for i in range(5)))
    ok(run("ingest", str(other), "--namespace", "shop", "--table", "orders", "--tenant", "acme"))

    body = json.loads(ok(run("lake", "ls", "--json")).stdout)
    tables = {(t["namespace"], t["table"]): t for t in body["tables"]}
    people = tables[("crm", "people")]
    assert (people["tenants"], people["partitions"], people["files"], people["rows"]) == (
        2, 2, 2, 3,
    )  # fmt: skip
    assert tables[("shop", "orders")]["rows"] == 5
    assert body["totals"]["rows"] == 8
    sizes = sum(p.stat().st_size for p in parquet_files(run.lake))
    assert body["totals"]["bytes"] == sizes

    text = ok(run("lake", "ls")).stdout
    assert "people" in text
    assert "orders" in text
    assert "total" in text

    by_tenant = json.loads(
        ok(run("lake", "ls", "--by-tenant", "--json", "--namespace", "crm")).stdout
    )
    assert {(t["tenant"], t["rows"]) for t in by_tenant["tenants"]} == {("acme", 2), ("globex", 1)}
    assert {t["namespace"] for t in by_tenant["tables"]} == {"crm"}
    text = ok(run("lake", "ls", "--by-tenant")).stdout
    assert "globex" in text


def test_lake_ls_marks_quarantine(run: CliRunnerCall, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1, "v": 1}\n{"id": 2, "v": 2}\n{"id": 3, "v": "three"}\n')
    result = ok(run.ingest(path, "--tenant", "acme"))
    assert "quarantined" in result.stdout
    body = json.loads(ok(run("lake", "ls", "--json")).stdout)
    quarantined = [t for t in body["tables"] if t["quarantine"]]
    assert [(t["table"], t["rows"]) for t in quarantined] == [("people", 1)]
    assert "people (quarantine)" in ok(run("lake", "ls")).stdout


def test_lake_ls_missing_lake_is_an_error(run: CliRunnerCall) -> None:
    result = run("lake", "ls")
    assert result.exit_code == 2
    assert "no lake at" in result.stderr


def test_lake_ls_empty_lake(run: CliRunnerCall) -> None:
    run.lake.mkdir()
    assert "no bronze files" in ok(run("lake", "ls", "--namespace", "crm")).stdout


# -- demo ----------------------------------------------------------------------------------


def test_demo_small(run: CliRunnerCall) -> None:
    result = ok(run("demo", "--scale", "0.01", "--seed", "7"))
    out = result.stdout
    assert "Landed " in out
    for table in ("wfm.companies", "wfm.profiles", "labs.test_results"):
        assert table in out
    assert "Quarantined" in out
    landed = int(out.split("Landed ", 1)[1].split()[0].replace(",", ""))
    body = json.loads(ok(run("lake", "ls", "--json")).stdout)
    assert body["totals"]["rows"] == landed
    assert len({t["tenants"] for t in body["tables"] if not t["quarantine"]}) == 1  # all 12
    # The progress bar's total is an estimate from the tenant plan; it should be close.
    assert abs(estimate_records(7, 0.01) - landed) < 0.25 * landed


def test_demo_rejects_bad_scale(run: CliRunnerCall) -> None:
    result = run("demo", "--scale", "0")
    assert result.exit_code == 2
    assert "scale must be a positive number" in result.stderr


# -- error handling ------------------------------------------------------------------------


def test_unexpected_error_is_one_line_unless_debug(
    run: CliRunnerCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("strata.cli.ingest_cmd.load_file", boom)
    path = tmp_path / "p.csv"
    path.write_text(PEOPLE_CSV)
    result = run.ingest(path, "--tenant", "acme")
    assert result.exit_code == 1
    assert "error: unexpected RuntimeError: disk on fire" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run("--log-level", "debug", "ingest", str(path), "--namespace", "crm",
                "--table", "people", "--tenant", "acme")  # fmt: skip
    assert debug.exit_code == 1
    assert isinstance(debug.exception, RuntimeError)  # re-raised for the traceback


def test_ctrl_c_exits_130(
    run: CliRunnerCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("strata.cli.ingest_cmd.load_file", interrupt)
    path = tmp_path / "p.csv"
    path.write_text(PEOPLE_CSV)
    assert run.ingest(path, "--tenant", "acme").exit_code == 130


def test_console_script(tmp_path: Path) -> None:
    """The installed entry point: real process, real exit codes, no traceback."""
    version = subprocess.run([STRATA, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0
    assert version.stdout.startswith("strata ")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops}\n")
    result = subprocess.run(
        [STRATA, "ingest", str(bad), "--namespace", "crm", "--table", "people",
         "--tenant", "acme", "--lake", str(tmp_path / "lake"),
         "--journal-dir", str(tmp_path / "journal")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "bad.jsonl, line 1" in result.stderr
    assert "Traceback" not in result.stderr
