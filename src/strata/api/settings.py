"""``[serve]`` in strata.toml: what the query API exposes, its limits and how it checks
callers. Every key is optional:

    [serve]
    expose_silver = ["profiles"]    # gold tables are always exposed; silver only if listed
    max_rows = 10000                # rows a query returns at most (more: cut, truncated=true)
    timeout_s = 10                  # a query running longer is interrupted
    scan_budget_mb = 2048           # bytes of the tenant's table files a query may read
    max_body_kb = 256               # request bodies above this are refused (413)
    memory_limit = "512MB"          # per tenant sandbox (DuckDB)
    threads = 1                     # per tenant sandbox
    sandboxes = 16                  # tenant sandboxes kept open
    default_freshness_slo = "24h"
    cache_url = "redis://127.0.0.1:6379/0"  # widget data cache; default in-process memory
    cache_ttl = "10m"               # how long a cached widget answer is kept
    cache_max_entries = 4096        # the in-process cache's size (entries)
    cache_prefix = "strata:"        # of every cache key: projects sharing a Redis differ here
    # The HTTP collector: its journal (relative to the project), where accepted records
    # wait until they land; its own body limit (413 above it).
    collector_journal = ".strata/collector-journal"
    collector_max_body_kb = 10240
    collector_tenant_field = "tenant_id"  # each record's tenant, for keys bound to none

    [serve.freshness]               # per table: how stale it may get before it is 'late'
    "gold.fct_assignments" = "1h"

    [serve.auth]                    # JWTs; API keys always work
    jwt_secret_env = "STRATA_JWT_SECRET"   # the HS256 secret is read from this variable
    jwt_public_key_file = "keys/issuer.pem" # or an RS256 public key (relative: to the project)
    tenant_claim = "company_id"
    role_claim = "role"
    audience = "strata"
    issuer = "https://auth.example.com"

Secrets never live in the file: a JWT secret comes from the named environment variable, and
``STRATA_CACHE_URL`` (a Redis URL with a password) overrides ``cache_url``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from strata.api.auth import JwtConfig
from strata.core.errors import ConfigError

_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SERVE_KEYS: Final = frozenset(
    {
        "expose_silver",
        "max_rows",
        "timeout_s",
        "scan_budget_mb",
        "max_body_kb",
        "memory_limit",
        "threads",
        "sandboxes",
        "default_freshness_slo",
        "freshness",
        "auth",
        "cache_url",
        "cache_ttl",
        "cache_max_entries",
        "cache_prefix",
        "collector_journal",
        "collector_max_body_kb",
        "collector_tenant_field",
    }
)
CACHE_URL_ENV: Final = "STRATA_CACHE_URL"
_CACHE_SCHEMES: Final = ("memory", "redis", "rediss", "unix")
_AUTH_KEYS: Final = frozenset(
    {
        "jwt_secret_env",
        "jwt_public_key_file",
        "tenant_claim",
        "role_claim",
        "audience",
        "issuer",
    }
)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    expose_silver: tuple[str, ...] = ()
    max_rows: int = 10_000
    timeout_s: float = 10.0
    scan_budget_bytes: int = 2048 * 1024 * 1024
    max_body_bytes: int = 256 * 1024
    memory_limit: str = "512MB"
    threads: int = 1
    sandboxes: int = 16
    default_freshness_slo_s: float = 86_400.0
    freshness_slo_s: Mapping[str, float] = field(default_factory=dict)
    jwt: JwtConfig | None = None
    cache_url: str | None = None  # None or memory://: in-process; redis://...: Redis
    cache_ttl_s: float = 600.0
    cache_max_entries: int = 4096
    cache_prefix: str = "strata:"
    # The HTTP collector (POST /api/v1/ingest/...): relative journal paths are resolved
    # against the project root by the app.
    collector_journal: Path = Path(".strata/collector-journal")
    collector_max_body_bytes: int = 10 * 1024 * 1024
    collector_tenant_field: str = "tenant_id"

    def freshness_slo(self, table: str) -> float:
        return self.freshness_slo_s.get(table, self.default_freshness_slo_s)


def load_serve_settings(root: Path, environ: Mapping[str, str] | None = None) -> ServeSettings:
    """The ``[serve]`` table of the project's strata.toml; raises ``ConfigError`` naming the
    key for a bad value."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads((root / "strata.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"strata.toml: {exc}") from exc
    serve = data.get("serve", {})
    if not isinstance(serve, dict):
        raise ConfigError("strata.toml: [serve] must be a table")
    _check_keys(serve, _SERVE_KEYS, "serve")
    defaults = ServeSettings()
    freshness = serve.get("freshness", {})
    if not isinstance(freshness, dict):
        raise ConfigError("strata.toml: [serve.freshness] must be a table of durations")
    return ServeSettings(
        expose_silver=tuple(_names(serve.get("expose_silver", []), "serve.expose_silver")),
        max_rows=_positive_int(serve, "max_rows", defaults.max_rows),
        timeout_s=_positive_float(serve, "timeout_s", defaults.timeout_s),
        scan_budget_bytes=_positive_int(serve, "scan_budget_mb", 2048) * 1024 * 1024,
        max_body_bytes=_positive_int(serve, "max_body_kb", 256) * 1024,
        memory_limit=_text(serve, "memory_limit", defaults.memory_limit),
        threads=_positive_int(serve, "threads", defaults.threads),
        sandboxes=_positive_int(serve, "sandboxes", defaults.sandboxes),
        default_freshness_slo_s=_duration(
            serve.get("default_freshness_slo", "24h"), "serve.default_freshness_slo"
        ),
        freshness_slo_s={
            str(table): _duration(value, f"serve.freshness.{table}")
            for table, value in freshness.items()
        },
        jwt=_jwt(root, serve.get("auth"), env),
        cache_url=_cache_url(serve, env),
        cache_ttl_s=_duration(serve.get("cache_ttl", "10m"), "serve.cache_ttl"),
        cache_max_entries=_positive_int(serve, "cache_max_entries", defaults.cache_max_entries),
        cache_prefix=_text(serve, "cache_prefix", defaults.cache_prefix),
        collector_journal=root / _text(serve, "collector_journal", str(defaults.collector_journal)),
        collector_max_body_bytes=_positive_int(serve, "collector_max_body_kb", 10 * 1024) * 1024,
        collector_tenant_field=_text(
            serve, "collector_tenant_field", defaults.collector_tenant_field
        ),
    )


def _cache_url(serve: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    url = environ.get(CACHE_URL_ENV) or serve.get("cache_url")
    if url is None:
        return None
    scheme = url.split("://", 1)[0] if isinstance(url, str) and "://" in url else None
    if scheme not in _CACHE_SCHEMES:
        raise ConfigError(
            f"strata.toml: serve.cache_url must be a redis://, rediss://, unix:// or memory:// "
            f"URL (or set ${CACHE_URL_ENV})"
        )
    return str(url)


def _jwt(root: Path, auth: Any, environ: Mapping[str, str]) -> JwtConfig | None:
    if auth is None:
        return None
    if not isinstance(auth, dict):
        raise ConfigError("strata.toml: [serve.auth] must be a table")
    _check_keys(auth, _AUTH_KEYS, "serve.auth")
    secret = None
    if "jwt_secret_env" in auth:
        variable = _text(auth, "jwt_secret_env", "")
        secret = environ.get(variable)
        if not secret:
            raise ConfigError(
                f"strata.toml: serve.auth.jwt_secret_env names ${variable}, which is not set"
            )
    public_key = None
    if "jwt_public_key_file" in auth:
        path = root / _text(auth, "jwt_public_key_file", "")
        try:
            public_key = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"strata.toml: serve.auth.jwt_public_key_file: {exc}") from exc
    if secret is None and public_key is None:
        return None
    try:
        return JwtConfig(
            secret=secret,
            public_key=public_key,
            tenant_claim=_text(auth, "tenant_claim", "company_id"),
            role_claim=_text(auth, "role_claim", "role"),
            audience=auth.get("audience"),
            issuer=auth.get("issuer"),
        )
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"strata.toml: [serve.auth]: {exc}") from exc


def _check_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"strata.toml: unknown key(s) in [{where}]: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(allowed))}"
        )


def _names(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"strata.toml: {key} must be a list of model names")
    return [v.lower() for v in value]


def _positive_int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"strata.toml: serve.{key} must be a positive integer, not {value!r}")
    return value


def _positive_float(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"strata.toml: serve.{key} must be a positive number, not {value!r}")
    return float(value)


def _text(table: Mapping[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"strata.toml: {key} must be a non-empty string, not {value!r}")
    return value


def _duration(value: Any, key: str) -> float:
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f"strata.toml: {key} must be a duration like '30m' or '2h', not {value!r}"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]
