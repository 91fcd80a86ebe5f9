"""REST API sources: a ``sources/*.yml`` file with ``kind: rest``, in the spirit of dlt's
``rest_api`` source (a client, then one endpoint per entity).

```yaml
name: pipedrive                   # defaults to the file's stem
kind: rest
base_url: https://${PIPEDRIVE_HOST}/v1
scope: acme-eu                    # the instance: bronze/pipedrive/scope=acme-eu/...
format: jsonl.gz                  # or parquet
headers: {Authorization: "Bearer ${PIPEDRIVE_TOKEN}"}   # ${ENV} in base_url, headers, params
params: {api_token: "${PIPEDRIVE_TOKEN}"}               # sent with every request
rate_limit: {requests_per_second: 10}
retries: {max_attempts: 5, backoff_seconds: 0.5, max_backoff_seconds: 30,
          max_retry_after_seconds: 300}
timeout_seconds: 30
tenant: acme                      # one tenant for every record (or tenant_field per entity)
entities:
  - entity: deals
    path: /deals
    records: data                 # dotted path to the list; omit it when the body is the list
    params: {sort: id}
    pagination: {type: offset, offset_param: start, limit_param: limit, limit: 100,
                 more: additional_data.pagination.more_items_in_collection}
    incremental: {param: since, watermark_field: update_time, kind: timestamp,
                  format: "%Y-%m-%d %H:%M:%S", initial: "2020-01-01T00:00:00Z"}
    tenant_field: account_id      # overrides the source's tenant
    primary_key: [id]
    lookback: 10m
    chunk_rows: 5000
```

Pagination ``type``s and their keys (defaults in brackets):

- ``none`` [the default]: one request.
- ``cursor``: ``cursor_path`` (the next cursor in the body), ``cursor_param`` [cursor],
  ``end`` (a flag path; true ends), ``cursor_only`` [false: later pages resend the
  entity's params and the incremental param; true: only the cursor, as Zendesk wants].
  A null, empty or repeated cursor ends too.
- ``page``: ``page_param`` [page], ``start`` [1], ``size_param`` and ``size`` (sent as the
  page size; a shorter page ends), ``more`` (a flag path; false ends). An empty page ends.
- ``offset``: ``offset_param`` [offset], ``limit_param`` [limit], ``limit`` (required),
  ``start`` [0], ``more``. The next offset is this one plus the records received; an empty
  page, a short one (without ``more``) or ``more`` false ends.
- ``link``: ``rel`` [next]: follow RFC 8288 ``Link: <url>; rel="next"`` until there is none.

``incremental.format`` says how the param is sent: ``iso`` [default] (``2026-01-02T03:04:05Z``),
``unix`` (epoch seconds), or a ``strftime`` pattern. Record values are read as ISO-8601,
epoch numbers, or that pattern; the watermark is kept as ISO-8601 UTC like SQL sources'.
``kind: id`` sends and keeps integers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from strata.core.errors import ConfigError, InvalidIdentifierError
from strata.core.identifiers import TENANT_RULE, is_valid_tenant, validate_tenant
from strata.extract.config import (
    WatermarkKind,
    chunk_rows_of,
    env_names,
    lookback_of,
    part_format_of,
    substitute_env,
)
from strata.extract.http import (
    CursorPagination,
    LinkPagination,
    OffsetPagination,
    PagePagination,
    Pagination,
    Params,
    RetryPolicy,
    describe_shape,
)
from strata.extract.landing import PartFormat, to_utc
from strata.transform.config import Node, ProjectError, Reader

_SOURCE_KEYS: Final = (
    "name",
    "kind",
    "base_url",
    "scope",
    "format",
    "headers",
    "params",
    "rate_limit",
    "retries",
    "timeout_seconds",
    "tenant",
    "entities",
)
_SQL_ONLY: Final = {
    "url": "is for kind: sql sources; a REST source has 'base_url'",
    "tables": "is for kind: sql sources; a REST source has 'entities'",
}
_ENTITY_KEYS: Final = (
    "entity",
    "path",
    "records",
    "params",
    "pagination",
    "incremental",
    "tenant_field",
    "primary_key",
    "lookback",
    "chunk_rows",
)
_ENTITY_SQL_ONLY: Final = {
    "table": "is for kind: sql sources; a REST entity has 'path'",
    "query": "is for kind: sql sources; a REST entity has 'path'",
    "watermark": "is for kind: sql sources; a REST entity has 'incremental'",
    "tenant_column": "is for kind: sql sources; a REST entity has 'tenant_field'",
}
_INCREMENTAL_KEYS: Final = ("param", "watermark_field", "kind", "format", "initial")
_RETRY_KEYS: Final = (
    "max_attempts",
    "backoff_seconds",
    "max_backoff_seconds",
    "max_retry_after_seconds",
)
_PAGINATION_KEYS: Final = {
    "none": ("type",),
    "cursor": ("type", "cursor_path", "cursor_param", "end", "cursor_only"),
    "page": ("type", "page_param", "start", "size_param", "size", "more"),
    "offset": ("type", "offset_param", "limit_param", "limit", "start", "more"),
    "link": ("type", "rel"),
}
_PROBE: Final = dt.datetime(2001, 2, 3, 4, 5, 6)


# -- incremental --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incremental:
    """The query parameter fed from the watermark, and the record field that moves it."""

    param: str
    watermark_field: str  # a dotted path in each record
    kind: WatermarkKind = "timestamp"
    format: str = "iso"  # timestamp only: iso, unix or a strftime pattern
    initial: str | None = None  # a watermark (ISO-8601 UTC or an integer) for the first run

    def param_value(self, watermark: str, lookback: dt.timedelta | int) -> str:
        """The param for records changed since ``watermark`` minus ``lookback``.

        Rounded down (whole seconds, or whatever the pattern keeps), so the window only
        ever grows: a duplicate is deduplicated downstream, a gap is lost for good.
        """
        if self.kind == "id":
            return str(int(watermark) - (lookback if isinstance(lookback, int) else 0))
        span = lookback if isinstance(lookback, dt.timedelta) else dt.timedelta(0)
        low = to_utc(dt.datetime.fromisoformat(watermark)) - span
        if self.format == "unix":
            return str(math.floor(low.timestamp()))
        if self.format == "iso":
            return low.strftime("%Y-%m-%dT%H:%M:%SZ")
        return low.replace(tzinfo=None).strftime(self.format)

    def parse(self, value: object) -> dt.datetime | int:
        """A record's watermark value; ``ValueError`` saying why when it is not one."""
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not {self._noun()}")
        if self.kind == "id":
            if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
                return int(value)
            raise ValueError(f"{value!r} is not an integer id")
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ValueError(f"{value!r} is not a timestamp")
            try:
                return dt.datetime.fromtimestamp(value, dt.UTC)
            except (OverflowError, OSError, ValueError) as exc:
                raise ValueError(f"{value!r} is not a timestamp in epoch seconds") from exc
        if isinstance(value, str):
            if "%" in self.format:
                try:
                    return to_utc(dt.datetime.strptime(value, self.format))
                except ValueError:
                    pass
            try:
                return to_utc(dt.datetime.fromisoformat(value))
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a timestamp")

    def text(self, value: dt.datetime | int) -> str:
        """The watermark as the catalog keeps it."""
        if isinstance(value, dt.datetime):
            return to_utc(value).isoformat()
        return str(value)

    def _noun(self) -> str:
        return "an integer id" if self.kind == "id" else "a timestamp"


# -- the source ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestEntity:
    entity: str
    path: str
    records: str | None  # dotted path to the list of records; None: the body is the list
    params: Params
    pagination: Pagination
    incremental: Incremental | None
    tenant_field: str | None
    primary_key: tuple[str, ...]
    lookback: dt.timedelta | int
    chunk_rows: int


@dataclass(frozen=True, slots=True)
class RestSourceConfig:
    name: str
    base_url: str
    scope: str
    format: PartFormat
    headers: Mapping[str, str]
    params: Params  # sent with every request
    requests_per_second: float | None
    retries: RetryPolicy
    timeout_seconds: float
    tenant: str | None
    entities: tuple[RestEntity, ...]
    path: str  # relative to the project, for messages
    secrets: frozenset[str] = field(default_factory=frozenset)  # ${ENV} values: redacted

    def entity(self, name: str) -> RestEntity:
        for spec in self.entities:
            if spec.entity == name:
                return spec
        known = ", ".join(e.entity for e in self.entities)
        raise ConfigError(f"source {self.name!r} has no entity {name!r} (it has: {known})")

    def url(self, spec: RestEntity) -> str:
        return self.base_url.rstrip("/") + "/" + spec.path.lstrip("/")


def parse_rest_source(
    root: Node,
    items: Mapping[str, Node],
    reader: Reader,
    stem: str,
    environ: Mapping[str, str],
) -> RestSourceConfig | None:
    """A ``kind: rest`` source from its file's top-level ``items``; problems go to ``reader``."""
    parser = _Parser(reader, environ)
    return parser.source(root, items, stem)


@dataclass(slots=True)
class _Parser:
    reader: Reader
    environ: Mapping[str, str]
    secrets: set[str] = field(default_factory=set)

    @property
    def problems(self) -> list[ProjectError]:
        return self.reader.problems

    def source(self, root: Node, items: Mapping[str, Node], stem: str) -> RestSourceConfig | None:
        reader = self.reader
        reader.check_keys(items, _SOURCE_KEYS, _SQL_ONLY)
        name = reader.name(items["name"], "name", "source") if "name" in items else stem
        base_url = self._base_url(root, items.get("base_url"))
        scope = self._scope(root, items.get("scope"))
        fmt = part_format_of(reader, items.get("format"))
        headers = dict(self._pairs(items.get("headers"), "headers"))
        params = self._pairs(items.get("params"), "params")
        rate = None
        if "rate_limit" in items:
            limits = self._mapping(items["rate_limit"], "rate_limit", ("requests_per_second",))
            if limits is not None and "requests_per_second" in limits:
                rate = self._number(limits["requests_per_second"], "rate_limit.requests_per_second")
        retries = self._retries(items.get("retries"))
        timeout = 30.0
        if "timeout_seconds" in items:
            timeout = self._number(items["timeout_seconds"], "timeout_seconds") or timeout
        tenant = self._tenant(items.get("tenant"))
        entities = self._entities(root, items.get("entities"))
        if self.problems or name is None or base_url is None or scope is None:
            return None
        return RestSourceConfig(
            name,
            base_url,
            scope,
            fmt,
            headers,
            params,
            rate,
            retries,
            timeout,
            tenant,
            entities,
            reader.path,
            frozenset(self.secrets),
        )

    # -- source keys ----------------------------------------------------------------------

    def _base_url(self, root: Node, node: Node | None) -> str | None:
        if node is None:
            self.reader.problem(root.line, "missing 'base_url' (e.g. https://api.example.com/v1)")
            return None
        text = self.reader.text(node, "base_url")
        if text is None:
            return None
        url = substitute_env(text, node, self.reader, self.environ, "base_url")
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.reader.problem(node.line, f"base_url must be an http(s) URL, not {url!r}")
            return None
        if parts.query or parts.fragment:
            self.reader.problem(node.line, "base_url takes no query or fragment; use 'params'")
            return None
        return url

    def _scope(self, root: Node, node: Node | None) -> str | None:
        if node is None:
            self.reader.problem(root.line, "missing 'scope' (e.g. the account or instance name)")
            return None
        text = self.reader.text(node, "scope")
        if text is not None and not is_valid_tenant(text):
            self.reader.problem(
                node.line, f"scope: {InvalidIdentifierError('scope', text, TENANT_RULE)}"
            )
            return None
        return text

    def _tenant(self, node: Node | None) -> str | None:
        if node is None:
            return None
        try:
            return validate_tenant(node.value)
        except InvalidIdentifierError as exc:
            self.reader.problem(node.line, f"tenant: {exc}")
            return None

    def _retries(self, node: Node | None) -> RetryPolicy:
        default = RetryPolicy()
        if node is None:
            return default
        items = self._mapping(node, "retries", _RETRY_KEYS)
        if items is None:
            return default
        attempts = default.max_attempts
        if "max_attempts" in items:
            value = items["max_attempts"].value
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                attempts = value
            else:
                self.reader.problem(
                    items["max_attempts"].line, "retries.max_attempts must be an integer >= 1"
                )
        numbers = {}
        for key in _RETRY_KEYS[1:]:
            if key in items:
                allow_zero = key != "max_retry_after_seconds"
                value = self._number(items[key], f"retries.{key}", allow_zero=allow_zero)
                if value is not None:
                    numbers[key] = value
        return RetryPolicy(
            attempts,
            numbers.get("backoff_seconds", default.backoff_seconds),
            numbers.get("max_backoff_seconds", default.max_backoff_seconds),
            numbers.get("max_retry_after_seconds", default.max_retry_after_seconds),
        )

    def _entities(self, root: Node, node: Node | None) -> tuple[RestEntity, ...]:
        if node is None or not isinstance(node.value, list) or not node.value:
            line = root.line if node is None else node.line
            self.reader.problem(line, "'entities' must be a non-empty list of endpoints to extract")
            return ()
        entities: list[RestEntity] = []
        seen: set[str] = set()
        for item in node.value:
            spec = self._entity(item)
            if spec is None:
                continue
            if spec.entity in seen:
                self.reader.problem(item.line, f"entity '{spec.entity}' is declared twice")
            seen.add(spec.entity)
            entities.append(spec)
        return tuple(entities)

    # -- entities -------------------------------------------------------------------------

    def _entity(self, node: Node) -> RestEntity | None:
        reader = self.reader
        items = reader.mapping(node, "an entity")
        if items is None:
            return None
        before = len(self.problems)
        reader.check_keys(items, _ENTITY_KEYS, _ENTITY_SQL_ONLY)
        entity = reader.name(items["entity"], "entity", "entity") if "entity" in items else None
        if "entity" not in items:
            reader.problem(node.line, "an entity needs 'entity' (its name)")
        path = self._path(node, items.get("path"))
        records = None
        if "records" in items:
            records = self._field(items["records"], "records")
        params = self._pairs(items.get("params"), "params")
        pagination = self._pagination(items.get("pagination"))
        incremental = self._incremental(items.get("incremental"))
        kind: WatermarkKind = incremental.kind if incremental is not None else "timestamp"
        if incremental is None and "lookback" in items:
            reader.problem(items["lookback"].line, "lookback needs 'incremental'")
        lookback = lookback_of(reader, items.get("lookback"), kind)
        tenant_field = None
        if "tenant_field" in items:
            tenant_field = self._field(items["tenant_field"], "tenant_field")
        primary_key = self._fields(items.get("primary_key"), "primary_key")
        chunk_rows = chunk_rows_of(reader, items.get("chunk_rows"))
        if len(self.problems) > before or entity is None or path is None:
            return None
        return RestEntity(
            entity,
            path,
            records,
            params,
            pagination,
            incremental,
            tenant_field,
            primary_key,
            lookback,
            chunk_rows,
        )

    def _path(self, entity: Node, node: Node | None) -> str | None:
        if node is None:
            self.reader.problem(entity.line, "an entity needs 'path' (e.g. /deals)")
            return None
        text = self.reader.text(node, "path")
        if text is None:
            return None
        if not text.startswith("/") or "://" in text or "?" in text or "#" in text:
            self.reader.problem(
                node.line,
                f"path must start with '/' and be relative to base_url, without a query "
                f"(use 'params'), not {text!r}",
            )
            return None
        return text

    def _pagination(self, node: Node | None) -> Pagination:
        if node is None:
            return Pagination()
        items = self.reader.mapping(node, "pagination")
        if items is None:
            return Pagination()
        kind = self.reader.text(items.get("type"), "pagination.type")
        if "type" not in items:
            self.reader.problem(
                node.line, f"pagination needs 'type' ({', '.join(_PAGINATION_KEYS)})"
            )
            return Pagination()
        if kind not in _PAGINATION_KEYS:
            if kind is not None:
                self.reader.problem(
                    items["type"].line,
                    f"pagination.type must be one of {', '.join(_PAGINATION_KEYS)}, not {kind!r}",
                )
            return Pagination()
        self.reader.check_keys(items, _PAGINATION_KEYS[kind], {})
        text = self._optional_field
        if kind == "cursor":
            if "cursor_path" not in items:
                self.reader.problem(node.line, "cursor pagination needs 'cursor_path'")
            return CursorPagination(
                text(items, "cursor_path") or "",
                self._param_name(items, "cursor_param") or "cursor",
                text(items, "end"),
                self._bool(items.get("cursor_only"), "pagination.cursor_only"),
            )
        if kind == "page":
            size_param = self._param_name(items, "size_param")
            size = self._count(items.get("size"), "pagination.size", 1)
            if (size_param is None) != (size is None):
                self.reader.problem(
                    node.line, "page pagination takes 'size_param' and 'size' together"
                )
            start = self._count(items.get("start"), "pagination.start", 0)
            return PagePagination(
                self._param_name(items, "page_param") or "page",
                1 if start is None else start,
                size_param,
                size,
                text(items, "more"),
            )
        if kind == "offset":
            limit = self._count(items.get("limit"), "pagination.limit", 1)
            if "limit" not in items:
                self.reader.problem(node.line, "offset pagination needs 'limit' (the page size)")
            return OffsetPagination(
                limit or 1,
                self._param_name(items, "offset_param") or "offset",
                self._param_name(items, "limit_param") or "limit",
                self._count(items.get("start"), "pagination.start", 0) or 0,
                text(items, "more"),
            )
        if kind == "link":
            return LinkPagination(self._param_name(items, "rel") or "next")
        return Pagination()

    def _incremental(self, node: Node | None) -> Incremental | None:
        if node is None:
            return None
        reader = self.reader
        items = self._mapping(node, "incremental", _INCREMENTAL_KEYS)
        if items is None:
            return None
        before = len(self.problems)
        param = self._param_name(items, "param", "incremental.param")
        if "param" not in items:
            reader.problem(node.line, "incremental needs 'param' (the query parameter it sets)")
        wm_field = self._optional_field(items, "watermark_field", "incremental.watermark_field")
        if "watermark_field" not in items:
            reader.problem(node.line, "incremental needs 'watermark_field' (the record's field)")
        kind: WatermarkKind = "timestamp"
        kind_text = reader.text(items.get("kind"), "incremental.kind") or "timestamp"
        if kind_text == "id":
            kind = "id"
        elif kind_text != "timestamp":
            reader.problem(
                items["kind"].line, f"incremental.kind must be timestamp or id, not {kind_text!r}"
            )
        fmt = "iso"
        if "format" in items:
            if kind == "id":
                reader.problem(items["format"].line, "incremental.format is for timestamps only")
            fmt = self._format(items["format"]) or fmt
        if len(self.problems) > before or param is None or wm_field is None:
            return None
        incremental = Incremental(param, wm_field, kind, fmt)
        if "initial" not in items:
            return incremental
        initial = self._initial(items["initial"], incremental)
        return None if initial is None else Incremental(param, wm_field, kind, fmt, initial)

    def _format(self, node: Node) -> str | None:
        text = self.reader.text(node, "incremental.format")
        if text is None or text in ("iso", "unix"):
            return text
        if "%" in text:
            try:
                if dt.datetime.strptime(_PROBE.strftime(text), text).year == _PROBE.year:
                    return text
            except ValueError:
                pass
        self.reader.problem(
            node.line,
            f"incremental.format must be iso, unix or a strftime pattern with a year "
            f"(e.g. '%Y-%m-%d %H:%M:%S'), not {text!r}",
        )
        return None

    def _initial(self, node: Node, incremental: Incremental) -> str | None:
        value = node.value
        try:
            if isinstance(value, dt.datetime):
                return incremental.text(to_utc(value))
            if isinstance(value, dt.date) and incremental.kind == "timestamp":
                return incremental.text(dt.datetime.combine(value, dt.time(), dt.UTC))
            return incremental.text(incremental.parse(value))
        except ValueError as exc:
            self.reader.problem(node.line, f"incremental.initial: {exc}")
            return None

    # -- small readers --------------------------------------------------------------------

    def _mapping(self, node: Node, key: str, allowed: tuple[str, ...]) -> dict[str, Node] | None:
        items = self.reader.mapping(node, key)
        if items is not None:
            self.reader.check_keys(items, allowed, {})
        return items

    def _pairs(self, node: Node | None, key: str) -> Params:
        """A mapping of names to scalars as text pairs; ``${ENV}`` values become secrets."""
        if node is None:
            return ()
        items = self.reader.mapping(node, key)
        if items is None:
            return ()
        pairs: list[tuple[str, str]] = []
        for name, value_node in items.items():
            value = value_node.value
            if isinstance(value, bool):
                pairs.append((name, "true" if value else "false"))
            elif isinstance(value, (int, float)):
                pairs.append((name, str(value)))
            elif isinstance(value, str):
                text = substitute_env(value, value_node, self.reader, self.environ, f"{key}.{name}")
                if text is not None:
                    pairs.append((name, text))
                    self.secrets.update(self.environ[v] for v in env_names(value))
            else:
                self.reader.problem(
                    value_node.line,
                    f"{key}.{name} must be text or a number, not {describe_shape(value)}",
                )
        return tuple(pairs)

    def _number(self, node: Node, key: str, *, allow_zero: bool = False) -> float | None:
        value = node.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number) and (number > 0 or (allow_zero and number == 0)):
                return number
        bound = ">= 0" if allow_zero else "> 0"
        self.reader.problem(node.line, f"{key} must be a number {bound}, not {value!r}")
        return None

    def _count(self, node: Node | None, key: str, minimum: int) -> int | None:
        if node is None:
            return None
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        self.reader.problem(node.line, f"{key} must be an integer >= {minimum}, not {value!r}")
        return None

    def _bool(self, node: Node | None, key: str) -> bool:
        if node is None:
            return False
        if isinstance(node.value, bool):
            return node.value
        self.reader.problem(node.line, f"{key} must be true or false, not {node.value!r}")
        return False

    def _field(self, node: Node, key: str) -> str | None:
        """A dotted path into a JSON object (``data``, ``meta.next_cursor``)."""
        text = self.reader.text(node, key)
        if text is None:
            return None
        if not text or any(not step for step in text.split(".")) or text != text.strip():
            self.reader.problem(
                node.line, f"{key} must be a dotted path like 'data.items', not {text!r}"
            )
            return None
        return text

    def _optional_field(
        self, items: Mapping[str, Node], key: str, label: str | None = None
    ) -> str | None:
        node = items.get(key)
        return None if node is None else self._field(node, label or f"pagination.{key}")

    def _param_name(
        self, items: Mapping[str, Node], key: str, label: str | None = None
    ) -> str | None:
        node = items.get(key)
        if node is None:
            return None
        text = self.reader.text(node, label or f"pagination.{key}")
        if text is not None and not text.strip():
            self.reader.problem(node.line, f"{label or f'pagination.{key}'} must not be empty")
            return None
        return text

    def _fields(self, node: Node | None, key: str) -> tuple[str, ...]:
        if node is None:
            return ()
        items = node.value if isinstance(node.value, list) else [node]
        if not items:
            self.reader.problem(node.line, f"{key} must name at least one field")
            return ()
        names = [self._field(item, key) for item in items]
        return tuple(n for n in names if n is not None)
