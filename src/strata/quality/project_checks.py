"""A project's declared checks: each model YAML's ``checks:`` plus ``checks/*.yml``.

Columns are checked where the model's SQL names its output columns (no ``SELECT *``);
silver tables also carry the lineage columns Strata adds. Problems are collected, file and
line each, for ``strata validate`` and for loading a project.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlglot import exp
from sqlglot.errors import ParseError

from strata.quality.checks import Check
from strata.quality.parse import parse_checks, parse_checks_file
from strata.transform.config import Node, ProjectError, load_yaml
from strata.transform.engine import BRONZE_FILE, BRONZE_ROW
from strata.transform.sql import DIALECT

if TYPE_CHECKING:  # the project loader calls this module: no import at run time
    from strata.transform.project import ProjectModel

CHECKS_DIR: Final = "checks"
_SILVER_EXTRA: Final = (BRONZE_FILE, BRONZE_ROW)


def read_checks(
    root: Path, models: Mapping[str, ProjectModel], problems: list[ProjectError]
) -> dict[str, tuple[Check, ...]]:
    """Qualified table (``silver.workers``) -> its checks, declared in either place."""
    tables = {name: f"{model.layer}.{name}" for name, model in models.items()}
    known = {tables[name]: _output_columns(model) for name, model in models.items()}

    def resolve(model: str) -> str | None:
        return tables.get(model)

    def columns(table: str) -> Collection[str] | None:
        return known.get(table)

    found: dict[str, list[Check]] = {}
    for name, model in sorted(models.items()):
        yml = model.sql_path.with_suffix(".yml")
        node = _read(root, yml, problems)
        items = node.value if node is not None and isinstance(node.value, dict) else {}
        if "checks" in items:
            rel = _rel(root, yml)
            declared = parse_checks(
                items["checks"], tables[name], rel, problems, resolve=resolve, columns=columns
            )
            found.setdefault(tables[name], []).extend(declared)
    folder = root / CHECKS_DIR
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else ():
        node = _read(root, path, problems, own=True)
        if node is None:
            continue
        table, declared = parse_checks_file(
            node, _rel(root, path), problems, resolve=resolve, columns=columns
        )
        if table is None:
            continue
        for check in declared:
            if any(c.name == check.name for c in found.get(table, ())):
                problems.append(
                    ProjectError(
                        check.path,
                        check.line,
                        f"check '{check.name}' on {table} is also declared elsewhere",
                    )
                )
                continue
            found.setdefault(table, []).append(check)
    return {table: tuple(checks) for table, checks in found.items() if checks}


def _output_columns(model: ProjectModel) -> frozenset[str] | None:
    """The columns a model's outer SELECT names, or ``None`` if it selects ``*``."""
    try:
        tree: exp.Expr = exp.maybe_parse(model.sql_text, dialect=DIALECT)
    except ParseError:
        return None  # the model loader reports it
    while isinstance(tree, exp.SetOperation):
        tree = tree.left
    if not isinstance(tree, exp.Select):
        return None
    if any(isinstance(e, exp.Star) or e.is_star for e in tree.expressions):
        return None
    names = {name.lower() for name in tree.named_selects}
    if model.layer == "silver":
        names.update(_SILVER_EXTRA)
    return frozenset(names)


def _read(
    root: Path, path: Path, problems: list[ProjectError], *, own: bool = False
) -> Node | None:
    """``path``'s YAML; problems reading it are reported only for files this module owns
    (``own``): the model loader reports those of model configs."""
    if not path.is_file():
        return None
    try:
        return load_yaml(path.read_text(encoding="utf-8"), _rel(root, path))
    except ProjectError as exc:
        if own:
            problems.append(exc)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        if own:
            problems.append(ProjectError(_rel(root, path), None, f"cannot read it: {exc}"))
        return None


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
