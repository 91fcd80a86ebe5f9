"""End to end: ``strata serve``'s app with the UI mounted, over HTTP on a loopback port, opened
in headless Chromium on a built project's file dashboard. Every widget the API lists must
be drawn (``data-drawn="true"``, no ``data-error``) from as many rows as the API answers,
with nothing logged to the console (no CSP refusal, no script error) and nothing of another
tenant on the page. A screenshot is left in the test's folder and at
``build/ui-screenshot.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ui_project import (
    DASHBOARD_ID,
    END,
    ROLES,
    SECRET,
    START,
    Keys,
    build_ui_project,
    create_keys,
    expected_acme_hours,
)
from web_helpers import REPO, load_page, screenshot, serve_http, widgets

from strata.api.app import create_app
from strata.web import CONTENT_SECURITY_POLICY, mount_ui

API = "/api/v1/analytics"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ui_project(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def keys(project: Path) -> Keys:
    return create_keys(project)


@pytest.fixture(scope="module")
def base(project: Path) -> Iterator[str]:
    app = create_app(project, environ={})
    mount_ui(app)
    with serve_http(app) as url:
        yield url


def _get(base: str, key: str, path: str, **params: str) -> Any:
    response = httpx.get(
        f"{base}{API}{path}", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _page_url(base: str, key: str) -> str:
    return f"{base}/ui/#key={key}&dashboard={DASHBOARD_ID}&start={START}&end={END}"


def test_the_page_is_served_with_its_policy(base: str) -> None:
    response = httpx.get(f"{base}/", follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url) == f"{base}/ui/"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_every_widget_of_the_dashboard_is_drawn(base: str, keys: Keys, tmp_path: Path) -> None:
    listed = _get(base, keys.acme, "/dashboards")["dashboards"]
    assert DASHBOARD_ID in [d["id"] for d in listed]
    dashboard = _get(base, keys.acme, f"/dashboards/{DASHBOARD_ID}")
    expected = {w["id"]: w for w in dashboard["widgets"]}
    assert {w["type"] for w in expected.values()} == {
        "kpi",
        "timeseries",
        "breakdown",
        "funnel",
        "heatmap",
    }
    answers = {
        wid: _get(base, keys.acme, f"/widgets/{wid}/data", start=START, end=END) for wid in expected
    }

    url = _page_url(base, keys.acme)
    page = load_page(url)
    found = widgets(page.dom)
    assert set(found) == set(expected)
    for wid, element in found.items():
        assert element.error is None, (expected[wid]["title"], element.error)
        assert element.drawn, (expected[wid]["title"], element.attrs)
        rows = len(answers[wid]["rows"])
        assert rows > 0, expected[wid]["title"]
        assert element.attrs["data-rows"] == str(rows)
        assert element.attrs["data-widget-type"] == expected[wid]["type"]
        assert expected[wid]["title"] in element.text
        # Freshness per widget: the status the API gave, shown in the widget.
        status = answers[wid]["freshness"]["status"]
        assert status.replace("_", " ") in element.text
    assert page.console == [], page.console
    assert page.dom.count(f'data-range="{START}..{END}"') == len(found)
    assert SECRET not in page.dom
    (hours,) = (
        found[wid]
        for wid, w in expected.items()
        if w["type"] == "kpi" and w["metric"]["key"] == "assignment_hours"
    )
    assert f"{expected_acme_hours():,.0f}" in hours.text

    shot = screenshot(
        url, tmp_path / "ui-screenshot.png", copy_to=REPO / "build" / "ui-screenshot.png"
    )
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one


def test_another_tenant_sees_its_own_numbers_over_the_default_ranges(base: str, keys: Keys) -> None:
    # No range in the fragment: each widget asks for its own (the file's START..END).
    page = load_page(f"{base}/ui/#key={keys.globex}&dashboard={DASHBOARD_ID}")
    found = widgets(page.dom)
    assert found
    assert all(w.drawn and w.error is None for w in found.values())
    assert page.dom.count(f'data-range="{START}..{END}"') == len(found)
    assert page.console == [], page.console
    assert SECRET in page.dom  # globex's role, on globex's page
    for role in ROLES:
        assert role not in page.dom  # acme's roles
