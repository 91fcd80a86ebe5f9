"""``strata init`` and ``strata validate``: create a project, and list every problem in one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strata.api.semantic import validate_semantic
from strata.cli.console import stdout
from strata.transform.project import load_project, validate_project
from strata.transform.scaffold import init_project


def init(
    path: Annotated[Path, typer.Argument(help="Folder to create the project in.")] = Path(),
    name: Annotated[
        str | None,
        typer.Option("--name", help="Project name (lowercase); default: the folder's name."),
    ] = None,
    empty: Annotated[
        bool, typer.Option("--empty", help="Only the folders, without the example models.")
    ] = False,
) -> None:
    """Scaffold a Strata project: strata.toml, models/silver, models/gold, explores and more."""
    project_name = name or path.resolve().name.replace("-", "_").lower()
    root = init_project(path, project_name, with_example=not empty)
    stdout().print(f"Created project [bold]{project_name}[/bold] in {root}")


def validate(
    path: Annotated[Path, typer.Argument(help="The project folder.")] = Path(),
) -> None:
    """Check a project's files and list every problem at once, with file and line."""
    problems = validate_project(path)
    if not problems:  # the models and explores load: the metrics and dashboards over them
        problems = validate_semantic(load_project(path))
    for problem in problems:
        stdout().print(str(problem), markup=False, highlight=False)
    if problems:
        raise typer.Exit(2)
    stdout().print("project is valid")
