"""HTTP list APIs for REST extractors: fetching JSON under a client-side rate limit with
retries, backoff and ``Retry-After``; and walking an API's pages (cursor, page number,
offset, ``Link`` header), as pure rules over each response.

    FetchError                   one GET got no usable answer (the message says why)
    ├── UnreachableError (Transient)   refused, reset or timed out on every attempt
    ├── ServerError (Transient)        5xx or 429 on every attempt, or a Retry-After too long
    ├── CredentialsError (Terminal)    401 or 403: retrying will not help
    ├── RejectedError (Terminal)       another 4xx, or a URL httpx cannot send
    └── BadResponseError (Terminal)    not JSON, or not the shape the config expects

The fetcher knows nothing of sources or entities; ``strata.extract.rest`` wraps these in
an ``ExtractError`` that names both. URLs in messages show the path and query with secret
values (``${ENV}`` substitutions such as an ``api_token``) replaced by ``***``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import orjson

from strata.core.errors import StrataError, Terminal, Transient
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

Params = tuple[tuple[str, str], ...]
"""Query parameters in order; a key may repeat (``include[]=a&include[]=b``)."""

REDACTED: Final = "***"
_RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_SNIPPET: Final = 120
_MISSING: Final = object()


class FetchError(StrataError):
    """A GET that produced no usable answer; ``str()`` is the user-facing reason."""


class UnreachableError(FetchError, Transient):
    pass


class ServerError(FetchError, Transient):
    pass


class CredentialsError(FetchError, Terminal):
    pass


class RejectedError(FetchError, Terminal):
    pass


class BadResponseError(FetchError, Terminal):
    pass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request: attempts in all, and how long to wait between them."""

    max_attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 300.0

    def backoff(self, attempt: int, rand: Callable[[float, float], float]) -> float:
        """Exponential (``backoff_seconds * 2**(attempt-1)``), capped, with jitter in [½, 1]."""
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))
        return base * rand(0.5, 1.0)


class RateLimiter:
    """At most ``requests_per_second``: each request starts at least 1/rate after the last."""

    def __init__(
        self,
        requests_per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 0.0 if not requests_per_second else 1.0 / requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._next = -math.inf

    def wait(self) -> None:
        if self.interval <= 0:
            return
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Fractional seconds are accepted (some gateways send them); ``None`` when absent or
    unreadable, so the caller falls back to its own backoff.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class Fetched:
    body: Any
    links: dict[str, str]  # rel -> absolute URL, from the Link header
    shown: str  # the request as messages show it: path?query, secrets redacted


class JsonFetcher:
    """GETs JSON through ``client`` under a rate limit, retrying what may succeed later.

    Retried: connection errors and timeouts, 5xx, and 429 — after ``Retry-After`` when a
    429 or 503 carries one, else after exponential backoff with jitter. Not retried: 401,
    403 and other 4xx, and a 2xx body that is not JSON.
    """

    def __init__(
        self,
        client: httpx.Client,
        policy: RetryPolicy,
        limiter: RateLimiter,
        *,
        secrets: Collection[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.client = client
        self.policy = policy
        self.limiter = limiter
        self.secrets = frozenset(s for s in secrets if s)
        self._sleep = sleep
        self._now = now
        self._rand = rand

    def get(self, url: str, params: Params) -> Fetched:
        try:
            request = self.client.build_request("GET", url, params=list(params))
        except (httpx.InvalidURL, httpx.HTTPError, UnicodeError) as exc:
            path = urlsplit(url).path
            problem = self._redact(_describe(exc))
            raise RejectedError(f"GET {path} could not be built: {problem}") from exc
        shown = self.show(request.url)
        attempts = self.policy.max_attempts
        for attempt in range(1, attempts + 1):
            self.limiter.wait()
            try:
                response = self.client.send(request)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt == attempts:
                    origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
                    raise UnreachableError(
                        f"cannot reach {origin} for GET {shown}: {self._redact(_describe(exc))} "
                        f"(after {attempts} attempt(s))"
                    ) from exc
                delay = self.policy.backoff(attempt, self._rand)
                self._pause(delay, shown, self._redact(_describe(exc)))
                continue
            except httpx.HTTPError as exc:
                raise RejectedError(
                    f"GET {shown} could not be sent: {self._redact(_describe(exc))}"
                ) from exc
            status = response.status_code
            if status in (401, 403):
                raise CredentialsError(
                    f"bad credentials: GET {shown} answered {status} "
                    f"{response.reason_phrase}{self._snippet(response)}"
                )
            if status in _RETRYABLE_STATUS:
                wait = None
                if status in (429, 503):
                    wait = retry_after_seconds(response.headers.get("Retry-After"), self._now())
                what = f"{status} {response.reason_phrase}"
                if attempt == attempts:
                    raise ServerError(
                        f"GET {shown} answered {what}{self._snippet(response)} "
                        f"(after {attempts} attempt(s))"
                    )
                if wait is not None and wait > self.policy.max_retry_after_seconds:
                    raise ServerError(
                        f"GET {shown} answered {what} asking to wait {wait:.0f} s, more than "
                        f"retries.max_retry_after_seconds ({self.policy.max_retry_after_seconds:g})"
                    )
                if wait is None:
                    wait = self.policy.backoff(attempt, self._rand)
                self._pause(wait, shown, what)
                continue
            if not 200 <= status < 300:
                raise RejectedError(
                    f"GET {shown} answered {status} {response.reason_phrase}"
                    f"{self._snippet(response)}"
                )
            return Fetched(self._json(response, shown), _links(response), shown)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def show(self, url: httpx.URL) -> str:
        """``path?query`` for messages, with secret values (whole or inside a value) hidden."""
        query = "&".join(f"{k}={self._redact(v)}" for k, v in url.params.multi_items())
        return url.path + (f"?{query}" if query else "")

    def _pause(self, seconds: float, shown: str, why: str) -> None:
        log.warning(
            "request failed; retrying",
            extra=fields(request=shown, why=why, wait_s=round(seconds, 3)),
        )
        self._sleep(seconds)

    def _json(self, response: httpx.Response, shown: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            kind = response.headers.get("Content-Type", "no content type")
            raise BadResponseError(
                f"GET {shown}: the response is not JSON ({kind}; body starts "
                f"{self._redact(response.text[:_SNIPPET])!r})"
            ) from None

    def _snippet(self, response: httpx.Response) -> str:
        text = " ".join(response.text.split())[:_SNIPPET]
        return f": {self._redact(text)}" if text else ""

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def merge_params(base: Params, override: Sequence[tuple[str, str]]) -> Params:
    """``base`` without the keys ``override`` sets, then ``override``."""
    keys = {k for k, _ in override}
    return tuple((k, v) for k, v in base if k not in keys) + tuple(override)


def _links(response: httpx.Response) -> dict[str, str]:
    links: dict[str, str] = {}
    for rel, link in response.links.items():
        target = link.get("url")
        if rel and target:
            links[rel] = str(response.url.join(target))
    return links


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- values read from responses -----------------------------------------------------------


def lookup(value: Any, path: str) -> Any:
    """The value at dotted ``path`` (``a.b.0.c``; ``""`` is ``value`` itself), or a marker
    that ``is_missing`` recognises — unlike ``None``, which the API may have sent."""
    for step in path.split(".") if path else ():
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def is_missing(value: object) -> bool:
    return value is _MISSING


def describe_shape(value: Any) -> str:
    """What was found instead, for messages: an object's keys, or the value's type."""
    if isinstance(value, Mapping):
        keys = sorted(str(k) for k in value)
        more = f", … {len(keys) - 12} more" if len(keys) > 12 else ""
        return f"an object with keys: {', '.join(keys[:12])}{more}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return {type(None): "null", bool: "a boolean", str: "text"}.get(type(value), "a number")


def _flag(body: Any, path: str, what: str) -> bool:
    value = lookup(body, path)
    if value is _MISSING:
        raise BadResponseError(f"no {what} flag {path!r} in the response ({describe_shape(body)})")
    return bool(value)


# -- pagination ---------------------------------------------------------------------------
# The rules behind a REST entity's ``pagination:`` (see rest_config): given the request just
# made and what came back, the next request or ``None``. Pure, so they are tested alone.


@dataclass(frozen=True, slots=True)
class PageRequest:
    url: str
    params: Params


def with_param(params: Params, key: str, value: str) -> Params:
    """``params`` with ``key`` set to ``value``: in its place if present, else at the end."""
    pairs: list[tuple[str, str]] = []
    placed = False
    for k, v in params:
        if k != key:
            pairs.append((k, v))
        elif not placed:
            pairs.append((key, value))
            placed = True
    if not placed:
        pairs.append((key, value))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Pagination:
    """One request and no more; subclasses know how to ask for the next page."""

    def first(self, params: Params) -> Params:
        return params

    def following(
        self, request: PageRequest, body: Any, links: Mapping[str, str], count: int
    ) -> PageRequest | None:
        """The request for the page after ``request`` (which got ``count`` records)."""
        return None


@dataclass(frozen=True, slots=True)
class CursorPagination(Pagination):
    cursor_path: str
    cursor_param: str = "cursor"
    end: str | None = None
    cursor_only: bool = False

    def following(
        self, request: PageRequest, body: Any, links: Mapping[str, str], count: int
    ) -> PageRequest | None:
        if self.end is not None and _flag(body, self.end, "end"):
            return None
        cursor = lookup(body, self.cursor_path)
        if cursor is _MISSING or cursor is None or cursor == "":
            return None
        text = str(cursor)
        if (self.cursor_param, text) in request.params:
            return None  # the same cursor again: the API has nothing newer
        base: Params = () if self.cursor_only else request.params
        return PageRequest(request.url, with_param(base, self.cursor_param, text))


@dataclass(frozen=True, slots=True)
class PagePagination(Pagination):
    page_param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = None
    more: str | None = None

    def first(self, params: Params) -> Params:
        params = with_param(params, self.page_param, str(self.start))
        if self.size_param is not None and self.size is not None:
            params = with_param(params, self.size_param, str(self.size))
        return params

    def following(
        self, request: PageRequest, body: Any, links: Mapping[str, str], count: int
    ) -> PageRequest | None:
        if count == 0:
            return None
        if self.more is not None:
            if not _flag(body, self.more, "more"):
                return None
        elif self.size is not None and count < self.size:
            return None
        page = int(dict(request.params)[self.page_param]) + 1
        return PageRequest(request.url, with_param(request.params, self.page_param, str(page)))


@dataclass(frozen=True, slots=True)
class OffsetPagination(Pagination):
    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"
    start: int = 0
    more: str | None = None

    def first(self, params: Params) -> Params:
        params = with_param(params, self.offset_param, str(self.start))
        return with_param(params, self.limit_param, str(self.limit))

    def following(
        self, request: PageRequest, body: Any, links: Mapping[str, str], count: int
    ) -> PageRequest | None:
        if count == 0:
            return None
        if self.more is not None:
            if not _flag(body, self.more, "more"):
                return None
        elif count < self.limit:
            return None
        offset = int(dict(request.params)[self.offset_param]) + count
        return PageRequest(request.url, with_param(request.params, self.offset_param, str(offset)))


@dataclass(frozen=True, slots=True)
class LinkPagination(Pagination):
    rel: str = "next"

    def following(
        self, request: PageRequest, body: Any, links: Mapping[str, str], count: int
    ) -> PageRequest | None:
        target = links.get(self.rel)
        if not target:
            return None
        parts = urlsplit(target)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        following = PageRequest(url, tuple(parse_qsl(parts.query, keep_blank_values=True)))
        return None if following == request else following
