from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from strata.core.errors import InvalidIdentifierError
from strata.transform import ProjectError, init_project, load_project, validate_project

FOLDERS = ["checks", "dashboards", "explores", "metrics", "models", "sources"]


def test_scaffold_loads_cleanly(tmp_path: Path) -> None:
    root = init_project(tmp_path / "acme", "acme")
    assert root == (tmp_path / "acme").resolve()
    assert validate_project(root, environ={}) == []
    project = load_project(root, environ={})
    assert project.config.name == "acme"
    assert project.config.tenant_key == "company_id"

    profiles = project.models["profiles"]
    assert profiles.layer == "silver"
    assert "from bronze.wfm.profiles" in profiles.sql_text
    assert profiles.config.primary_key == ("company_id", "id")
    assert profiles.config.soft_delete_column == "deleted_at"
    assert {c for c, doc in profiles.config.columns.items() if doc.pii} >= {"rut", "email"}

    workers = project.models["dim_workers"].config
    assert (workers.layer, workers.materialized) == ("gold", "tenant_partition")
    assert project.explores["workers"].fact == "dim_workers"


def test_scaffold_layout(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", "p")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == FOLDERS
    assert (root / ".gitignore").read_text() == "lake/\n.strata/\n"
    assert (root / "metrics" / ".gitkeep").is_file()
    settings = tomllib.loads((root / "strata.toml").read_text())
    assert settings == {
        "name": "p",
        "tenant_key": "company_id",
        "lake_url": "./lake",
        "catalog_url": "sqlite:///.strata/catalog.db",
    }


def test_scaffold_without_example_is_an_empty_valid_project(tmp_path: Path) -> None:
    root = init_project(tmp_path / "p", "p", with_example=False)
    project = load_project(root, environ={})
    assert dict(project.models) == {}
    assert dict(project.explores) == {}
    assert (root / "models" / "silver" / ".gitkeep").is_file()


def test_scaffold_accepts_a_folder_with_only_dotfiles(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("*.pyc")  # no trailing newline: kept, then extended
    init_project(tmp_path, "repo")
    assert (tmp_path / ".git").is_dir()
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\nlake/\n.strata/\n"
    assert validate_project(tmp_path, environ={}) == []


def test_scaffold_keeps_gitignore_entries_already_there(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("lake/\n")
    init_project(tmp_path, "repo", with_example=False)
    assert (tmp_path / ".gitignore").read_text() == "lake/\n.strata/\n"


def test_scaffold_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "strata.toml").write_text('name = "old"\n')
    with pytest.raises(ProjectError) as info:
        init_project(tmp_path, "acme")
    assert str(info.value) == (
        f"{tmp_path.resolve()}: is not empty (notes.txt, strata.toml); use a new folder"
    )
    assert (tmp_path / "strata.toml").read_text() == 'name = "old"\n'
    assert not (tmp_path / "models").exists()


def test_scaffold_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ProjectError, match="exists and is not a folder"):
        init_project(tmp_path / "f", "acme")


def test_scaffold_refuses_an_invalid_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentifierError, match="invalid project 'My Project'"):
        init_project(tmp_path / "p", "My Project")
    assert not (tmp_path / "p").exists()
