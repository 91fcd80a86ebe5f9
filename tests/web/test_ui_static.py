"""``mount_ui``: the UI's files, their headers and content types, and what they may load."""

from __future__ import annotations

import hashlib
import re
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import web_helpers
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from strata.api.app import create_app
from strata.transform.scaffold import init_project
from strata.web import CONTENT_SECURITY_POLICY, STATIC_DIR, mount_ui

with warnings.catch_warnings():
    # As in tests/api: Starlette asks for the httpx2 fork; any other warning stays an error.
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette\.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
VENDOR = STATIC_DIR / "vendor"
SHIPPED = ("index.html", "app.js", "app.css", "vendor/chart.umd.min.js")
JS = ("text/javascript", "application/javascript")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()
    mount_ui(app)
    with TestClient(app) as started:
        yield started


def _csp(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def test_the_policy_allows_this_origin_only() -> None:
    csp = _csp(CONTENT_SECURITY_POLICY)
    assert csp["default-src"] == ["'none'"]
    for directive in ("script-src", "style-src", "connect-src", "font-src"):
        assert csp[directive] == ["'self'"], directive
    assert csp["img-src"] == ["'self'", "data:"]  # data: for the empty favicon
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    values = " ".join(v for vs in csp.values() for v in vs)
    assert "unsafe" not in values
    assert "*" not in values


@pytest.mark.parametrize(
    ("path", "content_types"),
    [
        ("/ui/", ("text/html",)),
        ("/ui/index.html", ("text/html",)),
        ("/ui/app.js", JS),
        ("/ui/app.css", ("text/css",)),
        ("/ui/vendor/chart.umd.min.js", JS),
    ],
)
def test_static_files_are_served_with_their_type_and_the_policy(
    client: TestClient, path: str, content_types: tuple[str, ...]
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in content_types
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"]
    name = "index.html" if path.endswith("/") else path.removeprefix("/ui/")
    assert response.content == (STATIC_DIR / name).read_bytes()


def test_root_and_bare_ui_redirect_to_the_page(client: TestClient) -> None:
    for path in ("/", "/ui"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"].endswith("/ui/")
    assert client.get("/").status_code == 200


def test_mounting_twice_changes_nothing() -> None:
    app = FastAPI()
    mount_ui(app)
    routes = list(app.router.routes)
    mount_ui(app)
    assert app.router.routes == routes


def test_missing_files_and_escapes_are_404(client: TestClient) -> None:
    assert client.get("/ui/nope.js").status_code == 404
    assert client.get("/ui/../pyproject.toml").status_code == 404
    assert client.get("/ui/%2e%2e/%2e%2e/ui.py").status_code == 404
    assert client.post("/ui/app.js").status_code == 405


def test_mounted_on_the_query_api_the_api_keeps_its_routes(tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj", "proj")
    app = create_app(root)
    mount_ui(app)
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ui/").headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        # The API's own answers are not the UI's: no page policy on them.
        unauthenticated = client.get("/api/v1/analytics/projections")
        assert unauthenticated.status_code == 401
        assert "content-security-policy" not in unauthenticated.headers
        missing = client.get("/ui/nope.css")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    for attrs, body in scripts:
        assert 'src="' in attrs
        assert body.strip() == ""
    assert "<style" not in html
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "javascript:" not in html


# Any scheme URL, a protocol-relative reference or a CSS import would load from elsewhere.
_EXTERNAL = re.compile(
    r"\b[a-z][a-z0-9+.-]*://|(?:src|href|action)\s*=\s*[\"']?//|url\(\s*[\"']?//|@import",
    re.I,
)
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _shipped_text_files() -> list[Path]:
    return sorted(
        p for p in STATIC_DIR.rglob("*") if p.suffix in (".html", ".js", ".css") and p.is_file()
    )


def test_no_shipped_file_refers_to_another_host() -> None:
    files = _shipped_text_files()
    assert {p.relative_to(STATIC_DIR).as_posix() for p in files} >= set(SHIPPED)
    for path in files:
        text = path.read_text()
        if path.parent == VENDOR:
            # The library's licence banners name its home pages; its code names no host.
            banners = _BLOCK_COMMENT.findall(text)
            assert all("License" in b for b in banners if _EXTERNAL.search(b)), path
            text = _BLOCK_COMMENT.sub("", text)
        found = _EXTERNAL.findall(text)
        assert found == [], f"{path.name}: {found}"


def test_the_vendored_library_is_the_one_recorded() -> None:
    recorded = dict(
        line.split(": ", 1)
        for line in (VENDOR / "VENDORED.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert recorded["package"] == "chart.js"
    assert re.fullmatch(r"\d+\.\d+\.\d+", recorded["version"])
    library = VENDOR / recorded["file"]
    assert hashlib.sha256(library.read_bytes()).hexdigest() == recorded["sha256"]
    assert f"Chart.js v{recorded['version']}" in library.read_text()[:200]
    assert (VENDOR / "chart.js.LICENSE.md").read_text().startswith("The MIT License")
    script = (REPO / "scripts" / "vendor-ui.sh").read_text()
    assert f"VERSION={recorded['version']}\n" in script
    assert f'src="vendor/{recorded["file"]}"' in (STATIC_DIR / "index.html").read_text()


def test_every_static_file_ships_as_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["strata"]
    package = REPO / "src" / "strata"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    static = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert static
    assert static <= shipped, sorted(str(p) for p in static - shipped)


def test_in_ci_a_missing_browser_fails_the_browser_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_helpers, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="missing"):
        web_helpers.chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        web_helpers.chromium()
