"""Source declarations: ``sources/*.yml`` in a project, one source per file.

A file declares ``kind: sql`` (the default, below) or ``kind: rest`` (a REST API, see
``strata.extract.rest_config``).

```yaml
name: crm                       # defaults to the file's stem
kind: sql                       # the default
url: postgresql+psycopg://reader:${CRM_PASSWORD}@db:5432/crm
scope: eu1                      # e.g. the source's instance name
format: jsonl.gz                # or parquet
tables:
  - entity: contacts
    table: contacts             # or query: "SELECT ... FROM ..."
    watermark: {column: updated_at, kind: timestamp}
    tenant_column: account_id
    primary_key: [id]
    lookback: 10m               # timestamp: 30s / 10m / 2h / 1d; id: an integer
    chunk_rows: 5000
```
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from strata.core.errors import ConfigError
from strata.extract.landing import FORMATS, PartFormat
from strata.transform.config import Node, ProjectError, Reader
from strata.transform.project import read_yaml

if TYPE_CHECKING:
    from strata.extract.rest_config import RestSourceConfig

WatermarkKind = Literal["timestamp", "id"]
SourceKind = Literal["sql", "rest"]
SOURCES_DIR: Final = "sources"
DEFAULT_CHUNK_ROWS: Final = 5000
_SOURCE_KEYS: Final = ("name", "kind", "url", "scope", "format", "tables")
_TABLE_KEYS: Final = (
    "entity",
    "table",
    "query",
    "watermark",
    "tenant_column",
    "primary_key",
    "lookback",
    "chunk_rows",
)
_WATERMARK_KEYS: Final = ("column", "kind")
_REST_ONLY: Final = dict.fromkeys(
    ("base_url", "entities", "headers"), "is for REST sources: add 'kind: rest'"
)
_ENV: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION: Final = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SourceNotFoundError(ConfigError):
    pass


@dataclass(frozen=True, slots=True)
class TableSpec:
    entity: str
    table: str | None
    query: str | None
    watermark_column: str
    watermark_kind: WatermarkKind
    tenant_column: str | None
    primary_key: tuple[str, ...]
    lookback: dt.timedelta | int
    chunk_rows: int


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    url: str
    scope: str
    format: PartFormat
    tables: tuple[TableSpec, ...]
    path: str  # relative to the project, for messages

    def table(self, entity: str) -> TableSpec:
        for spec in self.tables:
            if spec.entity == entity:
                return spec
        known = ", ".join(t.entity for t in self.tables)
        raise ConfigError(f"source {self.name!r} has no entity {entity!r} (it has: {known})")


def load_source(
    project_root: Path, name: str, environ: Mapping[str, str] | None = None
) -> SourceConfig | RestSourceConfig:
    """Load source ``name`` (either kind) from ``project_root/sources``.

    Raises the first ``ProjectError`` of the file that declares it."""
    folder = project_root / SOURCES_DIR
    candidates = sorted(folder.glob("*.yml")) + sorted(folder.glob("*.yaml"))
    env = os.environ if environ is None else environ
    for path in candidates:
        source, problems = parse_source_file(path, f"{SOURCES_DIR}/{path.name}", env)
        if source is not None and source.name == name:
            return source
        if source is None and path.stem == name:
            raise problems[0]
        if problems and path.stem == name:
            raise problems[0]
    known = ", ".join(p.stem for p in candidates) or "none"
    raise SourceNotFoundError(f"no source {name!r} in {folder} (sources: {known})")


def parse_source_file(
    path: Path, rel: str, environ: Mapping[str, str]
) -> tuple[SourceConfig | RestSourceConfig | None, list[ProjectError]]:
    problems: list[ProjectError] = []
    root = read_yaml(path, rel, problems)
    if root is None:
        return None, problems
    source = parse_source(root, rel, path.stem, environ, problems)
    return (source if not problems else None), problems


def parse_source(
    root: Node, rel: str, stem: str, environ: Mapping[str, str], problems: list[ProjectError]
) -> SourceConfig | RestSourceConfig | None:
    reader = Reader(rel, problems)
    items = reader.mapping(root, "a source file")
    if items is None:
        return None
    kind = source_kind(reader, items)
    if kind is None:
        return None
    if kind == "rest":
        # Imported here: rest_config builds on this module's helpers (a cycle otherwise).
        from strata.extract.rest_config import parse_rest_source

        return parse_rest_source(root, items, reader, stem, environ)
    reader.check_keys(items, _SOURCE_KEYS, _REST_ONLY)
    name = reader.name(items["name"], "name", "source") if "name" in items else stem
    url_node = items.get("url")
    url = reader.text(url_node, "url")
    if url_node is None:
        reader.problem(root.line, "missing 'url' (a SQLAlchemy URL)")
    elif url is not None:
        url = substitute_env(url, url_node, reader, environ, "url")
    scope_node = items.get("scope")
    scope = reader.name(scope_node, "scope", "scope") if scope_node is not None else None
    if scope_node is None:
        reader.problem(root.line, "missing 'scope' (e.g. the source's instance name)")
    fmt = part_format_of(reader, items.get("format"))
    tables: list[TableSpec] = []
    tables_node = items.get("tables")
    if tables_node is None or not isinstance(tables_node.value, list) or not tables_node.value:
        line = root.line if tables_node is None else tables_node.line
        reader.problem(line, "'tables' must be a non-empty list of tables to extract")
    else:
        seen: set[str] = set()
        for node in tables_node.value:
            spec = _parse_table(reader, node)
            if spec is None:
                continue
            if spec.entity in seen:
                reader.problem(node.line, f"entity '{spec.entity}' is declared twice")
            seen.add(spec.entity)
            tables.append(spec)
    if problems or name is None or url is None or scope is None:
        return None
    return SourceConfig(name, url, scope, fmt, tuple(tables), rel)


def source_kind(reader: Reader, items: Mapping[str, Node]) -> SourceKind | None:
    """The file's ``kind`` (``sql`` when absent); ``None`` after recording a bad one."""
    node = items.get("kind")
    if node is None:
        return "sql"
    text = reader.text(node, "kind")
    if text == "sql":
        return "sql"
    if text == "rest":
        return "rest"
    if text is not None:
        reader.problem(node.line, f"kind must be sql or rest, not {text!r}")
    return None


def substitute_env(
    text: str, node: Node, reader: Reader, environ: Mapping[str, str], key: str
) -> str | None:
    """``text`` with each ``${VAR}`` replaced from ``environ``; a missing one is a problem."""
    missing = [m.group(1) for m in _ENV.finditer(text) if m.group(1) not in environ]
    if missing:
        reader.problem(node.line, f"{key}: environment variable {missing[0]} is not set")
        return None
    return _ENV.sub(lambda m: environ[m.group(1)], text)


def env_names(text: str) -> list[str]:
    """The ``VAR`` of each ``${VAR}`` in ``text``."""
    return [m.group(1) for m in _ENV.finditer(text)]


def part_format_of(reader: Reader, node: Node | None) -> PartFormat:
    if node is None:
        return "jsonl.gz"
    text = reader.text(node, "format") or "jsonl.gz"
    if text == "parquet":
        return "parquet"
    if text != "jsonl.gz":
        reader.problem(node.line, f"format {text!r} is not one of {', '.join(FORMATS)}")
    return "jsonl.gz"


def chunk_rows_of(reader: Reader, node: Node | None) -> int:
    if node is None:
        return DEFAULT_CHUNK_ROWS
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    reader.problem(node.line, "chunk_rows must be a positive integer")
    return DEFAULT_CHUNK_ROWS


def _parse_table(reader: Reader, node: Node) -> TableSpec | None:
    items = reader.mapping(node, "a table")
    if items is None:
        return None
    before = len(reader.problems)
    reader.check_keys(items, _TABLE_KEYS, {})
    entity = reader.name(items["entity"], "entity", "entity") if "entity" in items else None
    if "entity" not in items:
        reader.problem(node.line, "a table needs 'entity'")
    table = reader.text(items.get("table"), "table")
    query = reader.text(items.get("query"), "query")
    if ("table" in items) == ("query" in items):
        reader.problem(node.line, "a table needs exactly one of 'table' or 'query'")
    column: str | None = None
    kind: WatermarkKind = "timestamp"
    wm_node = items.get("watermark")
    if wm_node is None:
        reader.problem(node.line, "a table needs 'watermark: {column, kind}'")
    else:
        wm = reader.mapping(wm_node, "watermark")
        if wm is not None:
            reader.check_keys(wm, _WATERMARK_KEYS, {})
            if "column" in wm:
                column = reader.name(wm["column"], "watermark.column", "column")
            else:
                reader.problem(wm_node.line, "watermark needs 'column'")
            kind_text = reader.text(wm.get("kind"), "watermark.kind") or "timestamp"
            if kind_text == "id":
                kind = "id"
            elif kind_text != "timestamp":
                line = wm["kind"].line if "kind" in wm else wm_node.line
                reader.problem(line, f"watermark.kind must be timestamp or id, not {kind_text!r}")
    tenant = None
    if "tenant_column" in items:
        tenant = reader.name(items["tenant_column"], "tenant_column", "column")
    pk = reader.names(items.get("primary_key"), "primary_key") or ()
    lookback = lookback_of(reader, items.get("lookback"), kind)
    chunk_rows = chunk_rows_of(reader, items.get("chunk_rows"))
    if len(reader.problems) > before or entity is None or column is None:
        return None
    return TableSpec(entity, table, query, column, kind, tenant, pk, lookback, chunk_rows)


def lookback_of(reader: Reader, node: Node | None, kind: WatermarkKind) -> dt.timedelta | int:
    if kind == "id":
        if node is None:
            return 0
        if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value >= 0:
            return node.value
        reader.problem(node.line, "lookback of an id watermark must be an integer >= 0")
        return 0
    if node is None:
        return dt.timedelta(0)
    match = _DURATION.match(str(node.value)) if isinstance(node.value, str) else None
    if match is None:
        reader.problem(
            node.line, f"lookback must be a duration like 30s, 10m, 2h or 1d, not {node.value!r}"
        )
        return dt.timedelta(0)
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
