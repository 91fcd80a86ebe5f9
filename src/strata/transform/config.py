"""Typed settings of a project and its models and explores, read from YAML with line numbers.

Every problem is a ``ProjectError`` naming ``file:line``. Readers append problems to a list
rather than raising, so one pass reports everything wrong in a file; unknown keys are
problems too, because a misspelt ``primay_key`` must never be silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

import yaml

from strata.core.errors import ConfigError, InvalidIdentifierError
from strata.core.identifiers import validate_name

Layer = Literal["silver", "gold"]
Materialization = Literal["table", "incremental", "tenant_partition"]
ExploreRole = Literal["fact", "dimension"]

DEFAULT_TENANT_KEY: Final = "company_id"
MATERIALIZATIONS: Final[tuple[Materialization, ...]] = get_args(Materialization)
_CHOICES: Final = ", ".join(MATERIALIZATIONS)

# checks: data-quality checks on the model's table, read by strata.quality.parse.
_COMMON_KEYS: Final = ("description", "columns", "primary_key", "partition_by", "checks")
_MODEL_KEYS: Final[Mapping[Layer, tuple[str, ...]]] = {
    "silver": (*_COMMON_KEYS, "soft_delete_column", "source"),
    "gold": (*_COMMON_KEYS, "materialized", "unique_key"),
}
_COLUMN_KEYS: Final = ("description", "pii")
_SOURCE_KEYS: Final = ("extract", "entity", "scope")
_SOURCE_EXAMPLE: Final = "{extract: <source>, entity: <entity>}"
_EXPLORE_KEYS: Final = ("description", "fact", "dimensions")
_DIMENSION_KEYS: Final = ("model", "fact_key", "dimension_key")


class ProjectError(ConfigError):
    """A problem in a project file, located by ``path`` (relative to the project) and ``line``."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class ColumnDoc:
    description: str = ""
    pii: bool = False


@dataclass(frozen=True, slots=True)
class ExtractedSource:
    """A silver model's bronze landed by ``strata extract`` rather than the SDK: every part
    of ``entity`` of the source named ``extract`` (of one ``scope`` only, when given). The
    model's SQL reads it as ``bronze.<extract>.<entity>``; the parts' ``_tenant`` field is
    read as the ``tenant_key`` column (the project's)."""

    extract: str
    entity: str
    scope: str | None = None
    tenant_key: str = DEFAULT_TENANT_KEY

    @property
    def reference(self) -> str:
        return f"bronze.{self.extract}.{self.entity}"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """How one model is built. Silver models are always ``incremental`` on their primary key
    (Strata keeps the latest ``ingested_at`` per key); gold models choose a materialization.
    """

    name: str
    layer: Layer
    materialized: Materialization
    primary_key: tuple[str, ...] = ()
    unique_key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = (DEFAULT_TENANT_KEY,)
    description: str = ""
    columns: Mapping[str, ColumnDoc] = field(default_factory=lambda: MappingProxyType({}))
    soft_delete_column: str | None = None
    # Silver only: bronze from an extractor (``source: {extract, entity}``); None: the SDK's.
    source: ExtractedSource | None = None
    # The YAML keys set explicitly; the rest are defaults. Explores need to tell a declared
    # partition_by from the default one.
    declared_keys: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))
        shape = _shape_problems(self.layer, self.materialized, self.primary_key, self.unique_key)
        if shape:  # code that builds configs directly gets the same rules as YAML
            raise ConfigError(f"model '{self.name}': {shape[0][1]}")
        if self.source is not None and self.layer != "silver":
            raise ConfigError(f"model '{self.name}': only silver models read an extracted source")

    def declares_column(self, column: str) -> bool:
        """Whether the YAML names ``column`` as an output column (docs, keys or partitioning)."""
        partition = self.partition_by if "partition_by" in self.declared_keys else ()
        return column in {*self.columns, *self.primary_key, *self.unique_key, *partition}


@dataclass(frozen=True, slots=True)
class ExploreDimension:
    """A dimension joined to the fact on ``fact_key = dimension_key`` (and the tenant key)."""

    model: str
    fact_key: tuple[str, ...]
    dimension_key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExploreConfig:
    """A central gold fact plus its dimensions. Every join also matches the tenant key, which
    is why the fact and each dimension must carry it.
    """

    name: str
    fact: str
    dimensions: tuple[ExploreDimension, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """``strata.toml``. Loaded through ``load_project`` the URLs are absolute."""

    name: str
    lake_url: str = "./lake"
    catalog_url: str = "sqlite:///.strata/catalog.db"
    tenant_key: str = DEFAULT_TENANT_KEY
    models_dir: str = "models"
    explores_dir: str = "explores"


# -- YAML with line numbers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A YAML value and its 1-based line: a scalar, ``dict[str, Node]`` or ``list[Node]``."""

    value: object
    line: int | None  # None where the source keeps no positions (TOML nested tables)


def load_yaml(text: str, path: str) -> Node:
    """Parse one YAML document keeping each value's line; an empty file is an empty mapping."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise ProjectError(path, line, f"not valid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise ProjectError(path, None, f"not valid YAML: {exc}") from exc
    if root is None:
        return Node({}, 1)
    return _convert(root, path, yaml.constructor.SafeConstructor())


def _convert(node: yaml.Node, path: str, constructor: yaml.constructor.SafeConstructor) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        items: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ProjectError(path, key_line, f"keys must be text, got {key!r}")
            if key in items:  # PyYAML keeps the last silently; a repeated key is a mistake
                raise ProjectError(path, key_line, f"'{key}' is set twice")
            items[key] = Node(_convert(value_node, path, constructor).value, key_line)
        return Node(items, line)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(item, path, constructor) for item in node.value], line)
    return Node(constructor.construct_object(node), line)


# -- readers ----------------------------------------------------------------------------


@dataclass(slots=True)
class Reader:
    """Reads one file's values, recording each problem at its line."""

    path: str
    problems: list[ProjectError]

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(ProjectError(self.path, line, message))

    def mapping(self, node: Node, what: str) -> dict[str, Node] | None:
        if isinstance(node.value, dict):
            return node.value
        if node.value is None:
            return {}
        self.problem(node.line, f"{what} must be a mapping of keys to values")
        return None

    def check_keys(
        self, items: Mapping[str, Node], allowed: Iterable[str], misplaced: Mapping[str, str]
    ) -> None:
        allowed = tuple(allowed)
        for key, node in items.items():
            if key in misplaced:
                self.problem(node.line, f"'{key}' {misplaced[key]}")
            elif key not in allowed:
                self.problem(node.line, f"unknown key '{key}'{suggest(key, allowed)}")

    def text(self, node: Node | None, key: str) -> str | None:
        if node is None:
            return None
        if isinstance(node.value, str):
            return node.value
        self.problem(node.line, f"{key} must be text, not {_kind(node.value)}")
        return None

    def name(self, node: Node, key: str, kind: str) -> str | None:
        value = self.text(node, key)
        if value is None:
            return None
        try:
            return validate_name(value, kind)
        except InvalidIdentifierError as exc:
            self.problem(node.line, f"{key}: {exc}")
            return None

    def names(self, node: Node | None, key: str) -> tuple[str, ...] | None:
        """A column name or a list of them; ``None`` (after recording why) if invalid."""
        if node is None:
            return None
        items = node.value if isinstance(node.value, list) else [node]
        if not items:
            self.problem(node.line, f"{key} must name at least one column")
            return None
        names = [self.name(item, key, "column") for item in items]
        valid = tuple(n for n in names if n is not None)
        return valid if len(valid) == len(names) else None


def suggest(word: str, candidates: Iterable[str], *, list_all: bool = True) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, else (optionally) the valid ones."""
    options = sorted(candidates)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (expected one of: {', '.join(options)})" if options and list_all else ""


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "empty"}.get(type(value), repr(value))


def _shape_problems(
    layer: str, materialized: str, primary_key: tuple[str, ...], unique_key: tuple[str, ...]
) -> list[tuple[str, str]]:
    """Rules tying a model's layer, materialization and keys together, as (key, problem)."""
    if layer not in get_args(Layer):
        return [("layer", f"layer '{layer}' is not one of silver, gold")]
    if materialized not in MATERIALIZATIONS:
        return [("materialized", f"materialized '{materialized}' is not one of {_CHOICES}")]
    if layer == "silver":
        if materialized != "incremental":
            return [("materialized", "silver models are always incremental on their primary key")]
        if not primary_key:
            return [("primary_key", "silver models need a primary_key (Strata dedupes by it)")]
    elif materialized == "incremental" and not unique_key:
        # Reported where incremental was chosen: that is what asks for the key.
        return [("materialized", "materialized 'incremental' needs a unique_key to merge on")]
    elif materialized != "incremental" and unique_key:
        return [("unique_key", "unique_key is only used with materialized 'incremental'")]
    return []


def parse_model_config(
    name: str,
    layer: Layer,
    node: Node | None,
    path: str,
    tenant_key: str,
    problems: list[ProjectError],
) -> ModelConfig | None:
    """The model's config from its YAML (``None`` node: no YAML), or ``None`` if it has problems."""
    reader, before = Reader(path, problems), len(problems)
    items = reader.mapping(node or Node({}, 1), "a model config")
    if items is None:
        return None
    other: Layer = "gold" if layer == "silver" else "silver"
    misplaced = {
        key: f"applies to {other} models only"
        for key in _MODEL_KEYS[other]
        if key not in _MODEL_KEYS[layer]
    }
    reader.check_keys(items, _MODEL_KEYS[layer], misplaced)

    materialized: str = "incremental" if layer == "silver" else "table"
    if "materialized" in items and layer == "gold":
        materialized = reader.text(items["materialized"], "materialized") or materialized
    primary_key = reader.names(items.get("primary_key"), "primary_key") or ()
    unique_key = reader.names(items.get("unique_key"), "unique_key") or ()
    partition_by = reader.names(items.get("partition_by"), "partition_by") or (tenant_key,)
    soft_delete = items.get("soft_delete_column")
    soft_delete_column = (
        None if soft_delete is None else reader.name(soft_delete, "soft_delete_column", "column")
    )
    description = reader.text(items.get("description"), "description") or ""
    columns = _columns(reader, items.get("columns"))
    source_node = items.get("source")
    source = None if source_node is None else _extracted_source(reader, source_node, tenant_key)

    # A missing key has no line of its own: point at the start of the file's mapping.
    start = node.line if node is not None else None
    shape = _shape_problems(layer, materialized, primary_key, unique_key)
    # Only on otherwise sound files: a misspelt or invalid key would be reported twice.
    for key, problem in shape if len(problems) == before else ():
        reader.problem(items[key].line if key in items else start, problem)
    if materialized == "tenant_partition" and tenant_key not in partition_by:
        at = items["partition_by"].line if "partition_by" in items else start
        reader.problem(at, f"materialized 'tenant_partition' needs '{tenant_key}' in partition_by")
    if len(problems) > before:
        return None
    return ModelConfig(
        name=name,
        layer=layer,
        materialized=materialized,  # type: ignore[arg-type]  # checked by _shape_problems
        primary_key=primary_key,
        unique_key=unique_key,
        partition_by=partition_by,
        description=description,
        columns=columns,
        soft_delete_column=soft_delete_column,
        source=source,
        declared_keys=frozenset(items),
    )


def _extracted_source(reader: Reader, node: Node, tenant_key: str) -> ExtractedSource | None:
    """``source: {extract: crm, entity: contacts[, scope: eu1]}``; ``None`` if invalid."""
    if not isinstance(node.value, dict):
        got = _kind(node.value)
        reader.problem(node.line, f"source must be a mapping like {_SOURCE_EXAMPLE}, not {got}")
        return None
    items: dict[str, Node] = node.value
    before = len(reader.problems)
    reader.check_keys(items, _SOURCE_KEYS, {})
    names: dict[str, str | None] = {}
    for key, kind in (("extract", "source"), ("entity", "entity")):
        if key in items:
            names[key] = reader.name(items[key], f"source.{key}", kind)
        else:
            what = "the extracted source's name" if key == "extract" else "the entity to read"
            reader.problem(node.line, f"source needs '{key}' ({what}): {_SOURCE_EXAMPLE}")
    scope = reader.name(items["scope"], "source.scope", "scope") if "scope" in items else None
    extract, entity = names.get("extract"), names.get("entity")
    if len(reader.problems) > before or extract is None or entity is None:
        return None
    return ExtractedSource(extract, entity, scope, tenant_key)


def _columns(reader: Reader, node: Node | None) -> dict[str, ColumnDoc]:
    columns: dict[str, ColumnDoc] = {}
    items = reader.mapping(node, "columns") if node is not None else None
    for column, doc in (items or {}).items():
        if reader.name(Node(column, doc.line), "columns", "column") is None:
            continue
        fields = reader.mapping(doc, f"column '{column}'")
        if fields is None:
            continue
        reader.check_keys(fields, _COLUMN_KEYS, {})
        pii = fields.get("pii")
        if pii is not None and not isinstance(pii.value, bool):
            reader.problem(pii.line, f"pii must be true or false, not {_kind(pii.value)}")
        description = reader.text(fields.get("description"), "description") or ""
        columns[column] = ColumnDoc(description, pii is not None and pii.value is True)
    return columns


# (explore name, model name, role) -> a problem with that model, or None if it may be used.
ModelCheck = Callable[[str, str, ExploreRole], str | None]


def parse_explore_config(
    name: str, node: Node, path: str, check_model: ModelCheck, problems: list[ProjectError]
) -> ExploreConfig | None:
    """The explore in ``node``, or ``None`` if it has problems (recorded in ``problems``)."""
    reader, before = Reader(path, problems), len(problems)
    items = reader.mapping(node, "an explore")
    if items is None:
        return None
    reader.check_keys(items, _EXPLORE_KEYS, {})
    description = reader.text(items.get("description"), "description") or ""
    fact = _model_ref(reader, name, items.get("fact", Node(None, node.line)), "fact", check_model)
    dimensions: list[ExploreDimension] = []
    seen = {fact}
    entries = items.get("dimensions", Node([], node.line))
    if not isinstance(entries.value, list):
        reader.problem(entries.line, "dimensions must be a list")
    for entry in entries.value if isinstance(entries.value, list) else ():
        fields = reader.mapping(entry, "a dimension")
        if fields is None:
            continue
        reader.check_keys(fields, _DIMENSION_KEYS, {})
        ref = fields.get("model", Node(None, entry.line))
        model = _model_ref(reader, name, ref, "dimension", check_model)
        if model is not None and model in seen:
            role = "the fact" if model == fact else "a dimension"
            reader.problem(ref.line, f"'{model}' is already {role} of this explore")
        seen.add(model)
        for key in ("fact_key", "dimension_key"):
            if key not in fields:
                reader.problem(entry.line, f"dimension needs a {key}")
        fact_key = reader.names(fields.get("fact_key"), "fact_key")
        dimension_key = reader.names(fields.get("dimension_key"), "dimension_key")
        if fact_key and dimension_key and len(fact_key) != len(dimension_key):
            reader.problem(
                fields["dimension_key"].line,
                f"dimension_key has {len(dimension_key)} columns but fact_key has {len(fact_key)}",
            )
        if model and fact_key and dimension_key:
            dimensions.append(ExploreDimension(model, fact_key, dimension_key))
    if len(problems) > before or fact is None:
        return None
    return ExploreConfig(name, fact, tuple(dimensions), description)


def _model_ref(
    reader: Reader, explore: str, node: Node, role: ExploreRole, check: ModelCheck
) -> str | None:
    key = "fact" if role == "fact" else "model"
    if node.value is None:  # absent: the caller passed a Node at the owning mapping's line
        reader.problem(node.line, f"{'explore' if role == 'fact' else 'dimension'} needs a {key}")
        return None
    model = reader.name(node, key, "model")
    problem = None if model is None else check(explore, model, role)
    if problem is not None:
        reader.problem(node.line, problem)
        return None
    return model
