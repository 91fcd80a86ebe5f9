"""``mount_ui``: the dashboards UI as static files at ``/ui``, and ``/`` redirecting there.

The page is plain HTML, CSS and JavaScript with no build step; its one library (Chart.js)
is vendored under ``static/vendor`` by ``scripts/vendor-ui.sh``. It talks only to this
server's API, with the API key the user pastes as a Bearer header, so every answer under
``/ui`` carries a Content-Security-Policy that allows this origin alone: no inline script
or style, no other host, no framing, no forms posting anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_PATH: Final = "/ui"
UI_NAME: Final = "ui"
STATIC_DIR: Final = Path(__file__).parent / "static"

# Self only. Chart.js sets canvas sizes through the CSSOM (element.style), which style-src
# does not govern, so no 'unsafe-inline' is needed anywhere.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidate every time (ETag / Last-Modified make that cheap): an upgraded server
    # never runs a cached page against a changed API.
    "Cache-Control": "no-cache",
}


class _WithHeaders:
    """Wraps an ASGI app, setting ``headers`` on every HTTP answer it gives."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_ui(app: FastAPI) -> None:
    """Serve the dashboards UI at ``/ui/`` on ``app``, and redirect ``/`` to it. Calling it
    again on the same app changes nothing."""
    if any(getattr(route, "name", None) == UI_NAME for route in app.router.routes):
        return
    static = StaticFiles(directory=STATIC_DIR, html=True, follow_symlink=False)
    app.mount(UI_PATH, _WithHeaders(static, SECURITY_HEADERS), name=UI_NAME)

    async def to_ui() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)

    app.add_api_route("/", to_ui, methods=["GET"], include_in_schema=False)
