"""The page in headless Chromium against a stub of the dashboards API (its documented answers):
every widget type draws, a failing widget shows its error in place, and the key travels
only in the Authorization header.

The stub answers exactly the contract of ``/api/v1/analytics/dashboards`` and
``/widgets/{id}/data``, so these tests pin the page's rendering independently of the
project's data; ``test_ui_browser`` runs the page against the real server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from web_helpers import REPO, attribute_of, load_page, screenshot, serve_http, widgets

from strata.web import mount_ui

KEY = "sk_test_stub_key_0123456789"
FRESH = {"last_refresh": "2024-06-30T06:00:00Z", "lag_s": 5400, "slo_s": 21600, "status": "fresh"}
STALE = {"last_refresh": "2024-06-28T06:00:00Z", "lag_s": 180000, "slo_s": 21600, "status": "stale"}


def _widget(id_: str, title: str, type_: str, group_by: list[str], position: int) -> dict[str, Any]:
    return {
        "id": id_,
        "title": title,
        "type": type_,
        "metric": {"key": "hours", "version": 2},
        "grain": "month",
        "group_by": group_by,
        "position": position,
    }


WIDGETS = [
    _widget("w-kpi", "Hours worked", "kpi", [], 0),
    _widget("w-kpi-plain", "Open shifts", "kpi", [], 1),
    _widget("w-ts", "Hours by month", "timeseries", ["role"], 2),
    _widget("w-bd", "Hours by role", "breakdown", ["role"], 3),
    _widget("w-funnel", "Hiring funnel", "funnel", ["stage"], 4),
    _widget("w-heat", "Hours by role and month", "heatmap", ["role"], 5),
    _widget("w-empty", "Nothing yet", "timeseries", [], 6),
    _widget("w-broken", "Broken", "breakdown", ["role"], 7),
    # The same types in the shapes of a whole-range answer: no period column, a KPI's
    # previous value and change as "previous" and "change", columns as {name, type}.
    _widget("w-kpi-whole", "Hours this range", "kpi", [], 8),
    _widget("w-bd-whole", "Hours by role, whole range", "breakdown", ["role"], 9),
    _widget("w-heat-whole", "Hours by role and status", "heatmap", ["role", "status"], 10),
]
DASHBOARD = {
    "id": "d-ops",
    "title": "Operations",
    "description": "Hours and hiring, by month.",
    "source": "api",
    "widgets": WIDGETS,
}
OTHER = {"id": "d-other", "title": "Other", "description": "", "source": "file", "widgets": []}
MONTHS = ["2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01"]
ROLES = ["crew", "lead", "cook"]
STATUSES = ["open", "filled"]


def _data(widget_id: str) -> dict[str, Any]:
    widget = next(w for w in WIDGETS if w["id"] == widget_id)
    columns: list[str] = ["period", *widget["group_by"], "value"]
    rows: list[list[Any]]
    freshness = FRESH
    if widget_id == "w-kpi":
        columns = ["period", "value", "previous_value"]
        rows = [["2024-06-01", 1234.5, 1100.0]]
    elif widget_id == "w-kpi-plain":
        rows = [["2024-05-01", 40], ["2024-06-01", 32]]
        freshness = STALE
    elif widget_id in ("w-ts", "w-bd", "w-heat"):
        rows = [
            [m, role, 10.0 * (i + 1) + 3 * j]
            for i, m in enumerate(MONTHS)
            for j, role in enumerate(ROLES)
        ]
    elif widget_id == "w-funnel":
        rows = [
            ["2024-06-01", stage, n]
            for stage, n in [
                ("applied", 400),
                ("screened", 180),
                ("interviewed", 60),
                ("hired", 12),
            ]
        ]
    elif widget_id == "w-kpi-whole":
        columns = ["value", "previous", "change"]
        rows = [[90.0, 120.0, -30.0]]
    elif widget_id == "w-bd-whole":
        rows = [["lead", 75.5], ["crew", 40.0], ["cook", None]]
    elif widget_id == "w-heat-whole":
        rows = [[r, s, 10.0 * i + j] for i, r in enumerate(ROLES) for j, s in enumerate(STATUSES)]
    else:  # w-empty
        rows = []
    if widget_id.endswith("-whole"):
        columns = [c for c in columns if c != "period"]
        return {
            "widget": {"id": widget_id, "title": widget["title"], "type": widget["type"]},
            "metric": widget["metric"],
            "grain": widget["grain"],
            "columns": [{"name": c, "type": "DOUBLE"} for c in columns],
            "rows": rows,
            "freshness": {
                "last_refresh": None,
                "lag_s": None,
                "slo_s": 3600,
                "status": "never_built",
            },
            "cached": False,
        }
    return {
        "widget": {"id": widget_id, "title": widget["title"], "type": widget["type"]},
        "metric": widget["metric"],
        "grain": widget["grain"],
        "columns": columns,
        "rows": rows,
        "freshness": freshness,
        "cached": widget_id == "w-bd",
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def stub_app(seen: list[dict[str, Any]]) -> FastAPI:
    """The contract's answers for ``KEY``; every request's path, query and header noted."""
    app = FastAPI()
    mount_ui(app)

    @app.middleware("http")
    async def note(request: Request, call_next: Any) -> Any:
        seen.append(
            {
                "path": request.url.path,
                "query": request.url.query,
                "authorization": request.headers.get("authorization"),
                "referer": request.headers.get("referer"),
            }
        )
        if request.url.path.startswith("/api/") and (
            request.headers.get("authorization") != f"Bearer {KEY}"
        ):
            return _error(401, "unauthenticated", "missing or unknown API key")
        return await call_next(request)

    @app.get("/api/v1/analytics/dashboards")
    def list_dashboards() -> Any:
        return {"dashboards": [DASHBOARD, OTHER]}

    @app.get("/api/v1/analytics/dashboards/{dashboard_id}")
    def dashboard(dashboard_id: str) -> Any:
        found = {d["id"]: d for d in (DASHBOARD, OTHER)}.get(dashboard_id)
        if found is None:
            return _error(404, "not_found", "no such dashboard")
        return {k: v for k, v in found.items() if k != "source"}

    @app.get("/api/v1/analytics/widgets/{widget_id}/data")
    def widget_data(widget_id: str, start: str | None = None, end: str | None = None) -> Any:
        if widget_id == "w-broken":
            return _error(400, "query_failed", "the metric's explore is not built yet")
        return _data(widget_id)

    return app


@pytest.fixture(scope="module")
def stub() -> Any:
    seen: list[dict[str, Any]] = []
    with serve_http(stub_app(seen)) as base:
        yield base, seen


def test_every_widget_type_draws_and_errors_stay_in_their_widget(
    stub: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base, seen = stub
    seen.clear()
    url = f"{base}/ui/#key={KEY}&dashboard=d-ops&start=2024-03-01&end=2024-06-30"
    page = load_page(url)
    dom = page.dom
    found = widgets(dom)
    assert set(found) == {w["id"] for w in WIDGETS}
    broken = found.pop("w-broken")
    assert not broken.drawn
    assert broken.error == "query_failed: the metric's explore is not built yet"
    assert "the metric's explore is not built yet" in broken.text
    for widget in found.values():
        assert widget.drawn, widget
        assert widget.error is None, widget
    assert found["w-empty"].attrs.get("data-empty") == "true"
    assert "No data in this range" in found["w-empty"].text
    assert found["w-ts"].attrs["data-rows"] == "12"
    # KPI: value, delta against previous_value, or against the period before.
    assert "1,234.5" in found["w-kpi"].text
    assert "+134.5 (+12.2%)" in found["w-kpi"].text
    assert "32" in found["w-kpi-plain"].text
    assert "-8 (-20.0%)" in found["w-kpi-plain"].text
    # Freshness per widget, and the cache flag.
    assert "fresh" in found["w-ts"].text
    assert "lag 1h 30m / SLO 6h" in found["w-ts"].text
    assert "stale" in found["w-kpi-plain"].text
    assert "cached" in found["w-bd"].text
    # The heatmap is a grid: one cell per role and month.
    assert found["w-heat"].text.count("crew") == 1
    cells = len(ROLES) * len(MONTHS) + len(ROLES) * len(STATUSES)
    assert dom.count('data-value="') == cells
    # Whole-range shapes: the KPI compares with "previous", the heatmap crosses two groups.
    assert "90" in found["w-kpi-whole"].text
    assert "-30 (-25.0%) vs 120" in found["w-kpi-whole"].text
    assert "never built" in found["w-kpi-whole"].text
    assert found["w-bd-whole"].attrs["data-rows"] == "3"
    assert "filled" in found["w-heat-whole"].text
    assert attribute_of(dom, "dashboard-title", "id") == "dashboard-title"
    assert "Operations" in dom
    # No CSP refusal, no uncaught error, nothing logged.
    assert page.console == []
    # The key went only in the Authorization header: never in a path, query or referer.
    api = [r for r in seen if r["path"].startswith("/api/")]
    assert api
    assert all(r["authorization"] == f"Bearer {KEY}" for r in api)
    assert not any(KEY in (r["path"] + r["query"] + (r["referer"] or "")) for r in seen)
    data = [r for r in api if r["path"].endswith("/data")]
    assert {r["query"] for r in data} == {"start=2024-03-01&end=2024-06-30"}
    screenshot(url, tmp_path / "contract.png", copy_to=REPO / "build" / "ui-contract.png")


def test_a_refused_key_signs_out_with_a_message(stub: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = stub
    dom = load_page(f"{base}/ui/#key=sk_wrong&dashboard=d-ops").dom
    assert widgets(dom) == {}
    assert "The API key was refused: missing or unknown API key" in dom
    assert attribute_of(dom, "dashboard", "hidden") is not None
    assert attribute_of(dom, "signin", "hidden") is None


def test_without_a_key_the_page_asks_for_one(stub: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = stub
    seen.clear()
    page = load_page(f"{base}/ui/")
    dom = page.dom
    assert page.console == []
    assert "Sign in to see your dashboards" in dom
    assert attribute_of(dom, "signin", "hidden") is None
    assert not [r for r in seen if r["path"].startswith("/api/")]


def test_without_a_range_each_widget_gets_its_default(
    stub: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = stub
    seen.clear()
    page = load_page(f"{base}/ui/#key={KEY}")  # no dashboard either: the first one
    assert set(widgets(page.dom)) == {w["id"] for w in WIDGETS}
    assert attribute_of(page.dom, "dashboard", "data-dashboard-id") == "d-ops"
    assert {r["query"] for r in seen if r["path"].endswith("/data")} == {""}
    assert "Each widget shows its own default range." in page.dom
    assert attribute_of(page.dom, "range-defaults", "aria-pressed") == "true"
    assert page.console == []
