"""Load a project folder: ``strata.toml``, ``models/{silver,gold}/*.sql`` with their YAML,
and ``explores/*.yml``.

``validate_project`` reports every problem at once (for ``strata check``); ``load_project``
runs the same pass and raises the first problem, so both always agree on what is wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, get_args

from strata.catalog.config import ENV_VAR as CATALOG_ENV
from strata.catalog.config import CatalogConfig
from strata.core.errors import ConfigError, InvalidIdentifierError
from strata.core.identifiers import validate_name
from strata.transform.config import (
    DEFAULT_TENANT_KEY,
    ExploreConfig,
    ExploreRole,
    Layer,
    ModelConfig,
    Node,
    ProjectConfig,
    ProjectError,
    Reader,
    load_yaml,
    parse_explore_config,
    parse_model_config,
    suggest,
)

if TYPE_CHECKING:  # strata.quality reads model configs: imported when loading, not here
    from strata.quality.checks import Check

PROJECT_FILE: Final = "strata.toml"
LAKE_ENV: Final = "STRATA_LAKE"  # the same variable the CLI's --lake reads
# [serve] belongs to the query API (strata.api.settings), [quality] to the data-quality
# alerts (strata.quality.settings); each checks its own table.
_TOML_KEYS: Final = (
    "name",
    "tenant_key",
    "lake_url",
    "catalog_url",
    "models_dir",
    "explores_dir",
    "serve",
    "quality",
)
_TOML_LINE_RE: Final = re.compile(r"\(at line (\d+), column \d+\)$")


@dataclass(frozen=True, slots=True)
class ProjectModel:
    name: str
    layer: Layer
    sql_path: Path
    sql_text: str
    config: ModelConfig


@dataclass(frozen=True, slots=True)
class Project:
    """A loaded, valid project; ``root`` is absolute and the config URLs are too."""

    root: Path
    config: ProjectConfig
    models: Mapping[str, ProjectModel]
    explores: Mapping[str, ExploreConfig]
    # qualified table (silver.workers) -> its data-quality checks
    checks: Mapping[str, tuple[Check, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def layer(self, layer: Layer) -> tuple[ProjectModel, ...]:
        return tuple(m for m in self.models.values() if m.layer == layer)


def load_project(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Project:
    """Load the project at ``path``; raises the first ``ProjectError`` if anything is wrong.

    ``STRATA_LAKE`` and ``STRATA_CATALOG_URL`` in ``environ`` (default ``os.environ``) win
    over ``strata.toml``, so one project can run against different lakes.
    """
    project, problems = _load(Path(path), os.environ if environ is None else environ)
    if problems or project is None:
        raise problems[0]
    return project


def validate_project(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> list[ProjectError]:
    """Every problem in the project at ``path``, in file order; empty if it loads."""
    return _load(Path(path), os.environ if environ is None else environ)[1]


def _load(path: Path, environ: Mapping[str, str]) -> tuple[Project | None, list[ProjectError]]:
    problems: list[ProjectError] = []
    root = path.resolve()
    if not (root / PROJECT_FILE).is_file():
        where = f"not found in {root}" if root.is_dir() else f"{root} is not a folder"
        hint = "; `strata init` creates a project"
        return None, [ProjectError(PROJECT_FILE, None, where + hint)]
    config = _read_config(root, environ, problems)
    if config is None:
        return None, problems
    models, broken = _read_models(root, config, problems)
    explores = _read_explores(root, config, models, broken, problems)
    # Late import: strata.quality.parse builds on this package's config module.
    from strata.quality.project_checks import read_checks

    checks = read_checks(root, models, problems) if not problems else {}
    if problems:
        return None, problems
    project = Project(
        root, config, MappingProxyType(models), MappingProxyType(explores), MappingProxyType(checks)
    )
    return project, problems


# -- strata.toml -------------------------------------------------------------------------


def _read_config(
    root: Path, environ: Mapping[str, str], problems: list[ProjectError]
) -> ProjectConfig | None:
    """The project settings; ``None`` only if the file cannot be read at all. A bad value is
    reported and replaced by its default so models can still be checked.
    """
    text = _read_text(root / PROJECT_FILE, PROJECT_FILE, problems)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE_RE.search(str(exc))
        line = int(match.group(1)) if match else None
        problem = _TOML_LINE_RE.sub("", str(exc)).strip()
        problems.append(ProjectError(PROJECT_FILE, line, f"not valid TOML: {problem}"))
        return None
    reader = Reader(PROJECT_FILE, problems)
    nodes = {key: Node(value, _toml_line(text, key)) for key, value in data.items()}
    reader.check_keys(nodes, _TOML_KEYS, {})
    name_node = nodes.get("name")
    if name_node is None:
        reader.problem(None, "missing 'name' (the project's name)")
    name = None if name_node is None else reader.name(name_node, "name", "project")
    tenant_node = nodes.get("tenant_key")
    tenant_key = None if tenant_node is None else reader.name(tenant_node, "tenant_key", "column")
    defaults = ProjectConfig(name or "project", tenant_key=tenant_key or DEFAULT_TENANT_KEY)
    return ProjectConfig(
        name=defaults.name,
        tenant_key=defaults.tenant_key,
        lake_url=_lake_url(root, reader, nodes, environ, defaults.lake_url),
        catalog_url=_catalog_url(root, reader, nodes, environ, defaults.catalog_url),
        models_dir=_folder(reader, nodes, "models_dir", defaults.models_dir),
        explores_dir=_folder(reader, nodes, "explores_dir", defaults.explores_dir),
    )


def _toml_line(text: str, key: str) -> int | None:
    """tomllib keeps no positions: a top-level key sits on its first ``key =`` or ``[key]``."""
    name = rf"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""
    pattern = re.compile(rf"^\s*(?:{name}\s*=|\[\s*{name}\s*[.\]])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def _setting(
    reader: Reader, nodes: Mapping[str, Node], key: str, environ: Mapping[str, str], env: str
) -> tuple[str | None, Reader]:
    """The value of ``key``: ``$env`` if set, else the file's; with a reader for its origin."""
    raw = environ.get(env, "").strip()
    if raw:
        return raw, Reader(f"${env}", reader.problems)
    return reader.text(nodes.get(key), key), reader


def _lake_url(
    root: Path, reader: Reader, nodes: Mapping[str, Node], environ: Mapping[str, str], default: str
) -> str:
    url, _ = _setting(reader, nodes, "lake_url", environ, LAKE_ENV)
    url = url or default
    if "://" in url or Path(url).is_absolute():
        return url
    return str(root / url)  # a relative folder is inside the project, not the working dir


def _catalog_url(
    root: Path, reader: Reader, nodes: Mapping[str, Node], environ: Mapping[str, str], default: str
) -> str:
    url, origin = _setting(reader, nodes, "catalog_url", environ, CATALOG_ENV)
    try:
        # The catalog's own rule: a relative SQLite path is anchored at the project.
        return CatalogConfig.from_env(root, {CATALOG_ENV: url or default}).url
    except ConfigError as exc:
        node = nodes.get("catalog_url")
        origin.problem(node.line if node and origin is reader else None, str(exc))
        return CatalogConfig.for_project(root).url


def _folder(reader: Reader, nodes: Mapping[str, Node], key: str, default: str) -> str:
    node = nodes.get(key)
    value = reader.text(node, key)
    if node is None or value is None:
        return default
    folder = PurePosixPath(value)
    if folder.is_absolute() or ".." in folder.parts or not value.strip():
        reader.problem(node.line, f"{key} must be a folder inside the project, not {value!r}")
        return default
    return folder.as_posix()


# -- models and explores -----------------------------------------------------------------


def _read_models(
    root: Path, config: ProjectConfig, problems: list[ProjectError]
) -> tuple[dict[str, ProjectModel], set[str]]:
    """The valid models, and the names of models that exist but have problems."""
    models: dict[str, ProjectModel] = {}
    broken: set[str] = set()
    defined: dict[str, str] = {}  # name -> SQL file, to name both files of a duplicate
    base = root / config.models_dir
    layers: tuple[Layer, ...] = get_args(Layer)
    for layer in layers:
        folder = base / layer
        if not folder.is_dir():
            continue
        for sql_path in sorted(folder.glob("*.sql")):
            rel = relative_path(root, sql_path)
            name = stem_name(sql_path.stem, "model", rel, problems)
            if name is None:
                continue
            if name in defined:
                problems.append(
                    ProjectError(rel, None, f"model '{name}' is also defined in {defined[name]}")
                )
                continue
            defined[name] = rel
            model = _read_model(root, config, name, layer, sql_path, problems)
            if model is None:
                broken.add(name)
            else:
                models[name] = model
        for other in sorted(folder.iterdir()):
            sibling = relative_path(root, other.with_suffix(".sql"))
            if other.suffix == ".yml" and not other.with_suffix(".sql").is_file():
                problems.append(
                    ProjectError(relative_path(root, other), None, f"no {sibling} beside it")
                )
            elif other.suffix == ".yaml":
                problem = f"model configs end in .yml: rename it to {other.stem}.yml"
                problems.append(ProjectError(relative_path(root, other), None, problem))
    if base.is_dir():
        placed = {base / layer for layer in layers}
        for stray in sorted(p for p in base.rglob("*.sql") if p.parent not in placed):
            where = f"{config.models_dir}/silver/ or {config.models_dir}/gold/"
            problems.append(
                ProjectError(relative_path(root, stray), None, f"models belong directly in {where}")
            )
    return models, broken


def _read_model(
    root: Path,
    config: ProjectConfig,
    name: str,
    layer: Layer,
    sql_path: Path,
    problems: list[ProjectError],
) -> ProjectModel | None:
    before, rel = len(problems), relative_path(root, sql_path)
    sql_text = _read_text(sql_path, rel, problems)
    if sql_text is not None and not sql_text.strip():
        problems.append(ProjectError(rel, None, "the model's SQL is empty"))
    yml_path = sql_path.with_suffix(".yml")
    yml_rel = relative_path(root, yml_path)
    node: Node | None = None
    if yml_path.is_file():
        node = read_yaml(yml_path, yml_rel, problems)
        if node is None:
            return None
    elif layer == "silver":
        problem = (
            f"silver model '{name}' needs {yml_rel} with its primary_key (Strata dedupes by it)"
        )
        problems.append(ProjectError(rel, None, problem))
        return None
    model_config = parse_model_config(name, layer, node, yml_rel, config.tenant_key, problems)
    if model_config is None or sql_text is None or len(problems) > before:
        return None
    return ProjectModel(name, layer, sql_path, sql_text, model_config)


def _read_explores(
    root: Path,
    config: ProjectConfig,
    models: Mapping[str, ProjectModel],
    broken: set[str],
    problems: list[ProjectError],
) -> dict[str, ExploreConfig]:
    tenant_key = config.tenant_key
    gold = [m.name for m in models.values() if m.layer == "gold"]

    def check(explore: str, name: str, role: ExploreRole) -> str | None:
        if name in broken:
            return None  # the model's own file reports what is wrong with it
        model = models.get(name)
        if model is None:
            return f"{role} '{name}' is not a model{suggest(name, gold, list_all=False)}"
        if model.layer != "gold":
            return f"{role} '{name}' is a silver model; explores are built on gold models"
        if not model.config.declares_column(tenant_key):
            yml = relative_path(root, model.sql_path.with_suffix(".yml"))
            return (
                f"explore '{explore}' refused: {role} '{name}' does not declare the tenant key "
                f"'{tenant_key}' (add it to columns or partition_by in {yml})"
            )
        return None

    explores: dict[str, ExploreConfig] = {}
    folder = root / config.explores_dir
    if not folder.is_dir():
        return explores
    for path in sorted(folder.iterdir()):
        rel = relative_path(root, path)
        if path.suffix == ".yaml":
            problem = f"explore files end in .yml: rename it to {path.stem}.yml"
            problems.append(ProjectError(rel, None, problem))
            continue
        if path.suffix != ".yml":
            continue
        name = stem_name(path.stem, "explore", rel, problems)
        node = read_yaml(path, rel, problems)
        if name is None or node is None:
            continue
        explore = parse_explore_config(name, node, rel, check, problems)
        if explore is not None:
            explores[name] = explore
    return explores


# -- files -------------------------------------------------------------------------------


def relative_path(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def stem_name(stem: str, kind: str, rel: str, problems: list[ProjectError]) -> str | None:
    try:
        return validate_name(stem, kind)
    except InvalidIdentifierError as exc:
        problems.append(ProjectError(rel, None, f"{exc} (the file name is the {kind}'s name)"))
        return None


def _read_text(path: Path, rel: str, problems: list[ProjectError]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(ProjectError(rel, None, f"not UTF-8 text ({exc.reason})"))
    except OSError as exc:
        problems.append(ProjectError(rel, None, f"cannot be read: {exc.strerror}"))
    return None


def read_yaml(path: Path, rel: str, problems: list[ProjectError]) -> Node | None:
    text = _read_text(path, rel, problems)
    if text is None:
        return None
    try:
        return load_yaml(text, rel)
    except ProjectError as exc:
        problems.append(exc)
        return None
