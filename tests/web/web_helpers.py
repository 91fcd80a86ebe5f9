"""Helpers of the web UI tests: a real HTTP server in a thread and Debian's headless Chromium.

``chromium()`` is the browser, or a failed test in CI (``.ci/run`` installs it) and a skipped
one elsewhere. ``serve_http`` runs any ASGI app under uvicorn on a free loopback port for the
block. ``load_page`` opens a URL in a fresh headless profile and returns the DOM as the
page left it once its network and timers settled (virtual time), with the page's console
messages (a CSP refusal or an uncaught error shows there), and ``screenshot`` draws the
same page to a PNG. ``widgets`` reads the widget elements out of that DOM.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import uvicorn

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
# Enough for the page to fetch and draw: virtual time only advances when the page is idle,
# so this is an upper bound on timers, not a sleep.
VIRTUAL_TIME_BUDGET_MS = 15_000
BROWSER_TIMEOUT_S = 120


def chromium() -> str:
    """The Chromium binary; in CI its absence fails the test instead of skipping it."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI installs it")


@contextmanager
def serve_http(app: Any) -> Iterator[str]:
    """``app`` served over HTTP on 127.0.0.1 (a free port) for the block; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", ws="none", log_level="warning", access_log=False, loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        give_up = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the test server stopped during start-up")
            if time.monotonic() > give_up:
                raise RuntimeError("the test server did not start in 60 s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _browser(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="strata-chromium-") as profile:
        argv = [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--lang=en-US",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            *args,
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False
        )
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done


@dataclass(frozen=True)
class Page:
    dom: str
    console: list[str]  # the page's console messages: errors, CSP refusals, failed loads


def load_page(url: str) -> Page:
    """The page's DOM after it loaded, fetched and drew (``--dump-dom``), and what it logged."""
    done = _browser("--window-size=1280,900", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert "<html" in done.stdout, "chromium printed no DOM"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Page(done.stdout, console)


def screenshot(url: str, path: Path, *, copy_to: Path | None = None) -> Path:
    """A 1280x900 PNG of the page at ``path`` (and a copy at ``copy_to``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _browser("--window-size=1280,900", f"--screenshot={path}", url)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    if copy_to is not None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy_to)
    return path


@dataclass(frozen=True)
class WidgetElement:
    attrs: dict[str, str]
    text: str

    @property
    def id(self) -> str:
        return self.attrs["data-widget-id"]

    @property
    def drawn(self) -> bool:
        return self.attrs.get("data-drawn") == "true"

    @property
    def error(self) -> str | None:
        return self.attrs.get("data-error")


class _WidgetParser(HTMLParser):
    """Collects every element with ``data-widget-id``, with the text inside it."""

    _VOID = frozenset(
        "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
    )

    def __init__(self) -> None:
        super().__init__()
        self.found: list[WidgetElement] = []
        self._open: list[tuple[dict[str, str], list[str], int]] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._VOID:
            return
        self._depth += 1
        values = {name: value or "" for name, value in attrs}
        if "data-widget-id" in values:
            self._open.append((values, [], self._depth))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._VOID:
            return
        if self._open and self._open[-1][2] == self._depth:
            values, text, _ = self._open.pop()
            self.found.append(WidgetElement(values, " ".join("".join(text).split())))
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        for _, text, _ in self._open:
            text.append(data)


def widgets(dom: str) -> dict[str, WidgetElement]:
    """The widget elements of a dumped DOM, by widget id."""
    parser = _WidgetParser()
    parser.feed(dom)
    parser.close()
    return {w.id: w for w in parser.found}


class _AttributeFinder(HTMLParser):
    def __init__(self, element_id: str, name: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.name = name
        self.value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id") == self.element_id:
            self.value = values.get(self.name)


def attribute_of(dom: str, element_id: str, name: str) -> str | None:
    """An attribute of the element with ``id=element_id`` in a dumped DOM."""
    finder = _AttributeFinder(element_id, name)
    finder.feed(dom)
    finder.close()
    return finder.value
