"""A fake SaaS vendor for REST extractor tests: a real HTTP server on 127.0.0.1.

It answers like the list APIs the extractors meet in the wild:

- Pipedrive ``GET /v1/deals?start=&limit=[&since=]`` (offset pagination, the
  ``additional_data.pagination`` block, ``"data": null`` on an empty page), ``api_token``
  query param or ``Authorization: Bearer`` auth.
- A page-number list ``GET /v1/persons?page=&per_page=[&since=]`` (a short page ends).
- Zendesk's incremental cursor export ``GET /api/v2/incremental/tickets/cursor.json``
  (``start_time=<unix>`` first, then ``cursor=`` alone; ``after_cursor``/``end_of_stream``).
- A ``Link``-header list ``GET /api/v2/users.json?page=&per_page=[&updated_since=]``.

Every record carries an ``account_id`` (the tenant) and a timestamp that ``touch`` moves.
A per-second request budget answers 429 with ``Retry-After`` when exceeded, and ``fail``
injects faults (a 500, a 429, a non-JSON body...) for chosen requests. Every request is
recorded in ``requests`` with its arrival time, so tests can check what the client sent
and how long it waited.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
TENANTS = ("acme", "globex")
PIPEDRIVE_TIME = "%Y-%m-%d %H:%M:%S"
TOKEN = "vendor-secret-token-1234"

DEALS = "/v1/deals"
PERSONS = "/v1/persons"
TICKETS = "/api/v2/incremental/tickets/cursor.json"
USERS = "/api/v2/users.json"
_FIELD = {
    "deals": "update_time",
    "persons": "update_time",
    "tickets": "updated_at",
    "users": "updated_at",
}


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server saw it."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival
    status: int


@dataclass(slots=True)
class Fault:
    path: str
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    after: int  # let this many matching requests through first
    times: int | None  # None: until cleared
    seen: int = 0


class VendorServer:
    """Start with ``with VendorServer() as vendor:``; ``vendor.url`` is its base URL."""

    def __init__(
        self,
        *,
        deals: int = 0,
        persons: int = 0,
        tickets: int = 0,
        users: int = 0,
        token: str = TOKEN,
        budget_per_second: int | None = None,
        retry_after: str = "1",
        ticket_page_size: int = 50,
    ) -> None:
        self.token = token
        self.budget_per_second = budget_per_second
        self.retry_after = retry_after
        self.ticket_page_size = ticket_page_size
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._accepted: list[float] = []
        self._data: dict[str, list[dict[str, Any]]] = {
            "deals": [self._deal(i) for i in range(1, deals + 1)],
            "persons": [self._person(i) for i in range(1, persons + 1)],
            "tickets": [self._ticket(i) for i in range(1, tickets + 1)],
            "users": [self._user(i) for i in range(1, users + 1)],
        }
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> VendorServer:
        handler = type("Handler", (_Handler,), {"vendor": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the vendor server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- data -----------------------------------------------------------------------------

    def records(self, collection: str) -> list[dict[str, Any]]:
        """The collection in the order its list endpoint serves it (without filters)."""
        with self._lock:
            rows = [dict(r) for r in self._data[collection]]
        if collection == "tickets":
            rows.sort(key=lambda r: (_parse(r["updated_at"]), r["id"]))
        return rows

    def touch(
        self, collection: str, ids: Iterator[int] | list[int] | range, at: dt.datetime
    ) -> None:
        """Move the records' timestamps to ``at`` (an update at the vendor)."""
        wanted = set(ids)
        key = _FIELD[collection]
        with self._lock:
            for record in self._data[collection]:
                if record["id"] in wanted:
                    record[key] = _format(collection, at)
                    record["version"] = record.get("version", 1) + 1

    def add(self, collection: str, count: int, at: dt.datetime) -> list[int]:
        maker = {
            "deals": self._deal,
            "persons": self._person,
            "tickets": self._ticket,
            "users": self._user,
        }
        with self._lock:
            start = max((r["id"] for r in self._data[collection]), default=0) + 1
            ids = list(range(start, start + count))
            for i in ids:
                record = maker[collection](i)
                record[_FIELD[collection]] = _format(collection, at)
                self._data[collection].append(record)
        return ids

    def drop_field(self, collection: str, name: str) -> None:
        with self._lock:
            for record in self._data[collection]:
                record.pop(name, None)

    @staticmethod
    def _deal(i: int) -> dict[str, Any]:
        at = T0 + dt.timedelta(minutes=i)
        return {
            "id": i,
            "title": f"Deal {i} — ünïcode",
            "value": i * 100.5,
            "currency": "EUR",
            "account_id": TENANTS[i % 2],
            "org_id": {"value": 1000 + i, "name": f"Org {i}"},
            "update_time": at.strftime(PIPEDRIVE_TIME),
        }

    @staticmethod
    def _person(i: int) -> dict[str, Any]:
        at = T0 + dt.timedelta(minutes=i)
        return {
            "id": i,
            "name": f"Person {i}",
            "account_id": TENANTS[i % 2],
            "update_time": at.strftime(PIPEDRIVE_TIME),
        }

    @staticmethod
    def _ticket(i: int) -> dict[str, Any]:
        at = T0 + dt.timedelta(minutes=i)
        return {
            "id": i,
            "subject": f"Ticket {i}",
            "status": "open",
            "account_id": TENANTS[i % 2],
            "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @staticmethod
    def _user(i: int) -> dict[str, Any]:
        at = T0 + dt.timedelta(minutes=i)
        return {
            "id": i,
            "name": f"User {i}",
            "account_id": TENANTS[i % 2],
            "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    # -- faults and observations ----------------------------------------------------------

    def fail(
        self,
        path: str,
        status: int = 500,
        *,
        times: int | None = 1,
        after: int = 0,
        body: bytes | str | None = None,
        content_type: str = "application/json",
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer requests to ``path`` with ``status`` (``times=None``: until ``clear``)."""
        if body is None:
            body = json.dumps({"error": f"injected {status}"})
        raw = body.encode() if isinstance(body, str) else body
        headers = dict(headers or {})
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        with self._lock:
            self.faults.append(Fault(path, status, raw, content_type, headers, after, times))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def seen(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- serving --------------------------------------------------------------------------

    def handle(self, path: str, params: dict[str, str], headers: dict[str, str]) -> _Reply:
        with self._lock:
            now = time.monotonic()
            reply = self._fault(path) or self._auth(path, params, headers) or self._budget(now)
            if reply is None:
                reply = self._route(path, params)
            self.requests.append(Seen(path, params, headers, now, reply.status))
            return reply

    def _fault(self, path: str) -> _Reply | None:
        for fault in self.faults:
            if fault.path != path:
                continue
            fault.seen += 1
            if fault.seen <= fault.after:
                continue
            if fault.times is not None:
                if fault.times <= 0:
                    continue
                fault.times -= 1
            return _Reply(fault.status, fault.body, fault.content_type, dict(fault.headers))
        return None

    def _auth(self, path: str, params: dict[str, str], headers: dict[str, str]) -> _Reply | None:
        bearer = headers.get("authorization", "") == f"Bearer {self.token}"
        token = path.startswith("/v1/") and params.get("api_token") == self.token
        if bearer or token:
            return None
        return _Reply.json(401, {"success": False, "error": "unauthorized", "errorCode": 401})

    def _budget(self, now: float) -> _Reply | None:
        if self.budget_per_second is None:
            return None
        self._accepted = [t for t in self._accepted if now - t < 1.0]
        if len(self._accepted) >= self.budget_per_second:
            return _Reply.json(
                429, {"error": "Rate limit exceeded"}, {"Retry-After": self.retry_after}
            )
        self._accepted.append(now)
        return None

    def _route(self, path: str, params: dict[str, str]) -> _Reply:
        try:
            if path == DEALS:
                return self._deals(params)
            if path == PERSONS:
                return self._persons(params)
            if path == TICKETS:
                return self._tickets(params)
            if path == USERS:
                return self._users(params)
        except (KeyError, ValueError) as exc:
            return _Reply.json(400, {"error": f"bad request: {exc}"})
        return _Reply.json(404, {"error": "not found"})

    def _since(self, collection: str, since: dt.datetime | None) -> list[dict[str, Any]]:
        key = _FIELD[collection]
        rows = [dict(r) for r in self._data[collection]]
        return [r for r in rows if since is None or _parse(r[key]) >= since]

    def _deals(self, params: dict[str, str]) -> _Reply:
        start, limit = int(params.get("start", "0")), min(int(params.get("limit", "100")), 500)
        since = params.get("since")
        rows = self._since("deals", None if since is None else _pipedrive_time(since))
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        pagination: dict[str, Any] = {
            "start": start,
            "limit": limit,
            "more_items_in_collection": more,
        }
        if more:
            pagination["next_start"] = start + limit
        return _Reply.json(
            200,
            {"success": True, "data": page or None, "additional_data": {"pagination": pagination}},
        )

    def _persons(self, params: dict[str, str]) -> _Reply:
        page, per_page = int(params.get("page", "1")), int(params.get("per_page", "100"))
        if page < 1:
            raise ValueError("page starts at 1")
        since = params.get("since")
        rows = self._since("persons", None if since is None else _pipedrive_time(since))
        return _Reply.json(
            200, {"success": True, "data": rows[(page - 1) * per_page : page * per_page]}
        )

    def _tickets(self, params: dict[str, str]) -> _Reply:
        if ("cursor" in params) == ("start_time" in params):
            raise ValueError("send exactly one of start_time and cursor")
        rows = sorted(self._data["tickets"], key=lambda r: (_parse(r["updated_at"]), r["id"]))
        if "start_time" in params:
            since = dt.datetime.fromtimestamp(int(params["start_time"]), dt.UTC)
            rest = [r for r in rows if _parse(r["updated_at"]) >= since]
        else:
            at, last_id = json.loads(base64.urlsafe_b64decode(params["cursor"]))
            mark = (dt.datetime.fromisoformat(at), last_id)
            rest = [r for r in rows if (_parse(r["updated_at"]), r["id"]) > mark]
        page = [dict(r) for r in rest[: self.ticket_page_size]]
        if page:
            last = page[-1]
            cursor = _cursor(_parse(last["updated_at"]), last["id"])
        else:
            cursor = params.get("cursor") or _cursor(since, 0)
        return _Reply.json(
            200,
            {
                "tickets": page,
                "after_cursor": cursor,
                "before_cursor": None,
                "end_of_stream": len(rest) <= self.ticket_page_size,
            },
        )

    def _users(self, params: dict[str, str]) -> _Reply:
        page, per_page = int(params.get("page", "1")), int(params.get("per_page", "25"))
        since = params.get("updated_since")
        rows = self._since("users", None if since is None else _parse(since))
        body = {"users": rows[(page - 1) * per_page : page * per_page], "count": len(rows)}
        links = [f'<{self._link(params, 1)}>; rel="first"']
        if page * per_page < len(rows):
            links.append(f'<{self._link(params, page + 1)}>; rel="next"')
        if page > 1:
            links.append(f'<{self._link(params, page - 1)}>; rel="prev"')
        return _Reply.json(200, body, {"Link": ", ".join(links)})

    def _link(self, params: dict[str, str], page: int) -> str:
        query = {k: v for k, v in params.items() if k != "api_token"} | {"page": str(page)}
        return f"{self.url}{USERS}?{urlencode(query)}"


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, body: object, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(body).encode(), "application/json", headers or {})


class _Handler(BaseHTTPRequestHandler):
    vendor: VendorServer
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body leave in one write: no Nagle/delayed-ACK stall

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.vendor.handle(parts.path, params, headers)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _format(collection: str, at: dt.datetime) -> str:
    if _FIELD[collection] == "update_time":
        return at.astimezone(dt.UTC).strftime(PIPEDRIVE_TIME)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _pipedrive_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, PIPEDRIVE_TIME).replace(tzinfo=dt.UTC)


def _cursor(at: dt.datetime, last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), last_id]).encode()).decode()
