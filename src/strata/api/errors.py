"""Errors of the query API as HTTP answers, mapped in this one place.

Every error is JSON ``{"error": {"code": "...", "message": "..."}}``: the code is stable for
programs, the message is one line for people; a few errors add fields of their own beside
them (the collector's ``invalid_records`` lists ``records``). The caller's mistakes are
4xx with a message saying what to change; the server's own failures are a bare 500
``internal``, logged here with the traceback and never shown to the caller.

    ApiError                      raised by routes with its status and code
                                  (the collector: 422 invalid_records / invalid_identifier,
                                  400 malformed_body, 415 unsupported_media_type)
    RequestValidationError        400 malformed_json / invalid_request,
                                  415 unsupported_media_type (a body not sent as JSON)
    HTTPException (Starlette)     404 not_found, 405 method_not_allowed, 413 body_too_large
    AuthError                     401 unauthenticated (with WWW-Authenticate: Bearer)
    ForbiddenError                403 forbidden
    QueryRefused                  400 query_refused (the guard's reason)
    SandboxQueryError             400/408 by kind (see ``_STRATA``)
    InvalidIdentifierError        400 invalid_identifier
    MetricRequestError            400 invalid_metric_request
    CatalogUnavailableError       503 catalog_unavailable
    SandboxClosedError            503 unavailable (retry)
    JobsClosedError               503 unavailable (retry)
    any other exception           500 internal (``CatchAllMiddleware``)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strata.api.auth import AuthError, ForbiddenError
from strata.api.jobs import JobsClosedError
from strata.catalog.errors import CatalogUnavailableError
from strata.core.errors import InvalidIdentifierError, StrataError
from strata.core.logging import fields, get_logger
from strata.semantic.guard import QueryRefused
from strata.semantic.metric_compile import MetricRequestError
from strata.semantic.sandbox import (
    QueryMemoryError,
    QueryTimeout,
    ResultTooLargeError,
    SandboxClosedError,
    SandboxQueryError,
    StatementRefusedError,
)

log = get_logger(__name__)

JSON: Final = "application/json"
# Most specific class first: the first match wins.
_STRATA: Final[Sequence[tuple[type[StrataError], int, str]]] = (
    (AuthError, 401, "unauthenticated"),
    (ForbiddenError, 403, "forbidden"),
    (QueryRefused, 400, "query_refused"),
    (StatementRefusedError, 400, "query_refused"),
    (QueryTimeout, 408, "query_timeout"),
    (QueryMemoryError, 400, "query_memory_limit"),
    (ResultTooLargeError, 400, "result_too_large"),
    (SandboxQueryError, 400, "query_failed"),
    (InvalidIdentifierError, 400, "invalid_identifier"),
    (MetricRequestError, 400, "invalid_metric_request"),
    (CatalogUnavailableError, 503, "catalog_unavailable"),
    (SandboxClosedError, 503, "unavailable"),
    (JobsClosedError, 503, "unavailable"),
)
_HTTP_CODES: Final = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}
# Shown for the caller's errors only: a 500 says nothing of its cause.
_INTERNAL_MESSAGE: Final = "internal server error; the server log has the details"
_MAX_VALIDATION_ERRORS: Final = 5


class ApiError(Exception):
    """An answer other than success, raised by a route: status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})  # more fields of the error object
        super().__init__(message)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    # More fields after code and message, never in their place.
    error.update((k, v) for k, v in (details or {}).items() if k not in error)
    body = orjson.dumps({"error": error})
    return Response(body, status_code=status, media_type=JSON, headers=dict(headers or {}))


def classify(exc: StrataError) -> tuple[int, str] | None:
    """The status and code of a Strata error the caller caused; ``None`` for a server fault."""
    for kind, status, code in _STRATA:
        if isinstance(exc, kind):
            return status, code
    return None


def install_error_handlers(app: FastAPI) -> None:
    for kind in (ApiError, RequestValidationError, HTTPException, StrataError):
        app.add_exception_handler(kind, _handle)


async def _handle(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)
    if isinstance(exc, RequestValidationError):
        return _validation_error(request, exc)
    if isinstance(exc, HTTPException):
        return _http_error(request, exc)
    found = classify(exc) if isinstance(exc, StrataError) else None
    if found is None:
        log.error(
            "request failed",
            exc_info=exc,
            extra=fields(method=request.method, path=request.url.path),
        )
        return error_response(500, "internal", _INTERNAL_MESSAGE)
    status, code = found
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    message = f"query refused: {exc.reason}" if isinstance(exc, QueryRefused) else str(exc)
    return error_response(status, code, message, headers)


def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors: Sequence[Any] = exc.errors()
    # FastAPI reads a body as JSON only when it is declared JSON; anything else arrives as
    # bytes and fails as "not an object", which would send the caller looking elsewhere.
    declared = request.headers.get("content-type", "")
    if not _is_json(declared) and any(_whole_body(e) for e in errors):
        return error_response(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    broken = [e for e in errors if e.get("type") == "json_invalid"]
    if broken:
        detail = broken[0].get("ctx", {}).get("error", "invalid JSON")
        return error_response(400, "malformed_json", f"request body is not valid JSON: {detail}")
    # Never echo the offending input ("input" in pydantic's errors): it may be large or secret.
    parts = [f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
    shown = parts[:_MAX_VALIDATION_ERRORS]
    more = len(parts) - len(shown)
    message = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return error_response(400, "invalid_request", message or "invalid request")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def _whole_body(error: Any) -> bool:
    """An error about the body as a whole being of the wrong type (not its absence)."""
    return tuple(error.get("loc", ())) == ("body",) and error.get("type") != "missing"


def _location(loc: Sequence[object]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else "request"


def _http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal")
    if status == 404 and exc.detail == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif status == 400 and exc.detail == "There was an error parsing the body":
        code, message = "malformed_json", "request body could not be parsed as JSON"
    else:
        message = str(exc.detail)
    return error_response(status, code, message, exc.headers)


class CatchAllMiddleware:
    """The last word on any exception no handler took: log it, answer a bare 500.

    A pure ASGI middleware rather than an ``Exception`` handler, which Starlette runs in
    its outermost layer and then re-raises into the server's log a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception(
                "unhandled error",
                extra=fields(method=scope.get("method"), path=scope.get("path")),
            )
            if started:  # half a response is out: the server can only drop the connection
                raise
            await error_response(500, "internal", _INTERNAL_MESSAGE)(scope, receive, send)
