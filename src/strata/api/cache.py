"""The widget data cache: an in-process LRU with a TTL, or Redis (``[serve] cache_url``).

A key names everything the answer depends on, so nothing is ever invalidated by hand:

    {prefix}w:{tenant}:{sha256 of the canonical JSON of:
        tenant, widget id, the widget definition's hash, the metric's key and version
        (and those of the metrics a derived one uses),
        every table the metric reads with its Delta version, start, end}

A refresh commits a new table version, so the next read builds a new key and the old entry
just ages out. The tenant is in the key in clear (one tenant's entries can be listed or
dropped) and inside the hash; the stored value records the tenant and the full key again,
and ``get`` returns a value only if both match what the reader asked for, so an entry can
never be served to another tenant, even one written under the wrong key.

Values are JSON (orjson). Redis entries expire after the TTL. Any Redis failure (down,
slow, full, a garbled value) is logged and reads as a miss or a skipped write: the caller
computes the answer, never fails because of the cache.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from strata.core.logging import fields, get_logger

log = get_logger(__name__)

DEFAULT_PREFIX: Final = "strata:"
_LOG_EVERY_S: Final = 30.0  # an outage logs once per this, not once per request


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What a cached answer depends on; ``text`` is the storage key."""

    tenant: str
    text: str


def widget_key(
    *,
    prefix: str,
    tenant: str,
    widget_id: str,
    definition_hash: str,
    metrics: Sequence[tuple[str, int]],
    tables: Mapping[str, int],
    start: str,
    end: str,
) -> CacheKey:
    parts = {
        "tenant": tenant,
        "widget": widget_id,
        "definition": definition_hash,
        "metrics": [list(m) for m in metrics],
        "tables": sorted(tables.items()),
        "range": [start, end],
    }
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return CacheKey(tenant, f"{prefix}w:{tenant}:{digest}")


class WidgetCache(Protocol):
    """Get and put JSON-able answers; never raises for a cache failure. ``prefix`` starts
    every key built for it."""

    prefix: str

    def get(self, key: CacheKey) -> dict[str, Any] | None: ...

    def put(self, key: CacheKey, value: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def _envelope(key: CacheKey, value: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"tenant": key.tenant, "key": key.text, "value": value})


def _open(key: CacheKey, raw: bytes | str) -> dict[str, Any] | None:
    """The value stored in ``raw`` if it was stored for exactly ``key`` (tenant and all)."""
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(envelope, dict):
        return None
    if envelope.get("tenant") != key.tenant or envelope.get("key") != key.text:
        log.warning("cache entry refused: stored for another key", extra=fields(key=key.text))
        return None
    value = envelope.get("value")
    return value if isinstance(value, dict) else None


class MemoryCache:
    """In-process LRU of at most ``max_entries``, each kept ``ttl_s``; thread-safe. Values
    are stored serialized, as in Redis, so a caller cannot change a cached answer."""

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        ttl_s: float = 600.0,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("max_entries must be >= 1 and ttl_s > 0")
        self._clock = clock  # injectable so expiry can be tested without sleeping
        self.prefix = prefix
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: CacheKey) -> dict[str, Any] | None:
        now = self._clock()
        with self._lock:
            found = self._entries.get(key.text)
            if found is None:
                return None
            expires, raw = found
            if expires <= now:
                del self._entries[key.text]
                return None
            self._entries.move_to_end(key.text)
        return _open(key, raw)

    def put(self, key: CacheKey, value: Mapping[str, Any]) -> None:
        raw = _envelope(key, value)
        with self._lock:
            self._entries[key.text] = (self._clock() + self.ttl_s, raw)
            self._entries.move_to_end(key.text)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def put_raw(self, text: str, raw: bytes) -> None:
        """Store bytes under a key as they are (tests: a value written under a wrong key)."""
        with self._lock:
            self._entries[text] = (self._clock() + self.ttl_s, raw)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisCache:
    """Redis through redis-py's connection pool. Short socket timeouts: a slow Redis must
    cost a request milliseconds, not seconds."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 600.0,
        timeout_s: float = 0.25,
        prefix: str = DEFAULT_PREFIX,
        client: Any = None,
    ) -> None:
        import redis  # imported here: only a server configured for Redis needs it

        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._errors = (redis.RedisError, OSError)
        self._client = client or redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self._lock = threading.Lock()
        self._last_logged = 0.0

    def get(self, key: CacheKey) -> dict[str, Any] | None:
        try:
            raw = self._client.get(key.text)
        except self._errors as exc:
            self._failed("get", exc)
            return None
        return None if raw is None else _open(key, raw)

    def put(self, key: CacheKey, value: Mapping[str, Any]) -> None:
        try:
            self._client.set(key.text, _envelope(key, value), px=self.ttl_ms)
        except self._errors as exc:
            self._failed("put", exc)

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors:
            pass

    def _failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_logged < _LOG_EVERY_S:
                return
            self._last_logged = now
        log.warning(
            "widget cache unavailable: computing instead",
            extra=fields(operation=what, error=" ".join(str(exc).split()) or type(exc).__name__),
        )


def open_cache(
    url: str | None, *, ttl_s: float, max_entries: int, prefix: str = DEFAULT_PREFIX
) -> WidgetCache:
    """The cache ``[serve] cache_url`` names: ``redis://``/``rediss://``/``unix://`` for
    Redis, else (none, or ``memory://``) in-process."""
    if url is not None and url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        return RedisCache(url, ttl_s=ttl_s, prefix=prefix)
    return MemoryCache(max_entries=max_entries, ttl_s=ttl_s, prefix=prefix)


def canonical_hash(document: Mapping[str, Any] | Sequence[Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()
