"""``strata init`` and ``strata validate`` through the real command tree."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from strata.cli import app


def invoke(*argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.output


def test_init_creates_a_project_that_validates(tmp_path: Path) -> None:
    code, out = invoke("init", str(tmp_path / "acme-analytics"))
    assert code == 0, out
    assert "acme_analytics" in out
    assert (tmp_path / "acme-analytics" / "strata.toml").exists()
    assert (tmp_path / "acme-analytics" / "models" / "silver" / "profiles.sql").exists()
    code, out = invoke("validate", str(tmp_path / "acme-analytics"))
    assert (code, out.strip()) == (0, "project is valid")


def test_init_refuses_a_folder_with_work_in_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    code, out = invoke("init", str(tmp_path), "--name", "p")
    assert code == 2
    assert "not empty" in out
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_validate_lists_every_problem_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "p"
    invoke("init", str(root), "--name", "p")
    with (root / "models" / "silver" / "profiles.yml").open("a") as f:
        f.write("primary_keys: [id]\n")
    (root / "explores" / "broken.yml").write_text("fact: no_such_model\n")
    code, out = invoke("validate", str(root))
    assert code == 2
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("explores/broken.yml:1:") or lines[1].startswith(
        "explores/broken.yml:1:"
    )
    assert any(
        "profiles.yml" in line and "primary_keys" in line and "primary_key" in line
        for line in lines
    )


def test_validate_reports_metric_and_dashboard_problems(tmp_path: Path) -> None:
    root = tmp_path / "p"
    invoke("init", str(root), "--name", "p")
    metric = "key: headcount\nversion: 1\ntype: simple\nexplore: workers\n"
    (root / "metrics" / "headcount.yml").write_text(metric + "time_dimension: hired_on\n")
    (root / "metrics" / "broken.yml").write_text("key: broken\nversion: 1\ntype: simple\n")
    code, out = invoke("validate", str(root))
    assert code == 2
    assert "metrics/broken.yml" in out
    assert "needs 'measure'" in out
    (root / "metrics" / "broken.yml").unlink()
    (root / "metrics" / "headcount.yml").write_text(
        metric + "time_dimension: hired_on\nmeasure: {agg: count}\n"
    )
    (root / "dashboards" / "people.yml").write_text(
        "title: People\nwidgets:\n  - {title: n, type: kpi, metric: headcount, grain: day, "
        "group_by: [job_title]}\n"
    )
    code, out = invoke("validate", str(root))
    assert code == 2
    assert "dashboards/people.yml" in out
    assert "no dimension 'job_title'" in out
    (root / "dashboards" / "people.yml").write_text(
        "title: People\nwidgets:\n  - {title: n, type: kpi, metric: headcount, grain: day}\n"
    )
    code, out = invoke("validate", str(root))
    assert code == 0, out
