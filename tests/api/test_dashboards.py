"""Dashboards and widgets through the API: who may read and write them, which tenant sees
which, widget checks, and each widget type's data against the fixture's rows."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import SECRET, Keys, TestClient, bearer

DASHBOARDS = "/api/v1/analytics/dashboards"
FILE_DASHBOARD = "file-overview"


def create(client: TestClient, token: str, **body: Any) -> Any:
    return client.post(DASHBOARDS, json={"title": "Ops", **body}, headers=bearer(token))


def add_widget(client: TestClient, token: str, dashboard_id: str, **body: Any) -> Any:
    widget = {
        "title": "w",
        "type": "timeseries",
        "metric": "assignment_count",
        "grain": "month",
        "range": "2024-01-01..2024-06-30",
        **body,
    }
    return client.post(f"{DASHBOARDS}/{dashboard_id}/widgets", json=widget, headers=bearer(token))


def data(client: TestClient, token: str, widget_id: str, **params: str) -> Any:
    return client.get(
        f"/api/v1/analytics/widgets/{widget_id}/data", params=params, headers=bearer(token)
    )


@pytest.fixture(scope="module")
def board(client: TestClient, keys: Keys) -> str:
    response = create(client, keys.acme_admin, description="acme's own")
    assert response.status_code == 201, response.text
    dashboard_id: str = response.json()["id"]
    return dashboard_id


# -- dashboards ----------------------------------------------------------------------------


def test_viewers_read_but_cannot_create(client: TestClient, keys: Keys, board: str) -> None:
    assert create(client, keys.acme_viewer).status_code == 403
    assert create(client, keys.acme_service).status_code == 403
    listed = client.get(DASHBOARDS, headers=bearer(keys.acme_viewer)).json()["dashboards"]
    assert [d["id"] for d in listed] == [FILE_DASHBOARD, board]
    one = client.get(f"{DASHBOARDS}/{board}", headers=bearer(keys.acme_viewer)).json()
    assert one["tenant"] == "acme"
    assert one["source"] == "api"
    assert one["description"] == "acme's own"
    assert one["read_only"] is False


def test_the_file_dashboard_is_listed_with_its_widgets_and_read_only(
    client: TestClient, keys: Keys
) -> None:
    found = client.get(f"{DASHBOARDS}/{FILE_DASHBOARD}", headers=bearer(keys.globex_viewer))
    body = found.json()
    assert body["source"] == "file"
    assert body["tenant"] is None
    assert body["read_only"] is True
    assert [w["type"] for w in body["widgets"]] == ["timeseries", "kpi", "breakdown"]
    change = client.put(
        f"{DASHBOARDS}/{FILE_DASHBOARD}", json={"title": "x"}, headers=bearer(keys.acme_admin)
    )
    assert change.status_code == 409
    assert change.json()["error"]["code"] == "read_only"
    widget = add_widget(client, keys.acme_admin, FILE_DASHBOARD)
    assert widget.status_code == 409


def test_the_second_tenant_never_sees_another_tenants_dashboard(
    client: TestClient, keys: Keys, board: str
) -> None:
    listed = client.get(DASHBOARDS, headers=bearer(keys.globex_viewer)).json()["dashboards"]
    assert [d["id"] for d in listed] == [FILE_DASHBOARD]
    path = f"{DASHBOARDS}/{board}"
    assert client.get(path, headers=bearer(keys.globex_admin)).status_code == 404
    assert client.get(f"{DASHBOARDS}/nope", headers=bearer(keys.globex_admin)).status_code == 404
    put = client.put(path, json={"title": "mine now"}, headers=bearer(keys.globex_admin))
    assert put.status_code == 404
    assert add_widget(client, keys.globex_admin, board).status_code == 404
    assert client.get(path, headers=bearer(keys.acme_viewer)).json()["title"] == "Ops"


def test_update_is_for_admins(client: TestClient, keys: Keys, board: str) -> None:
    path = f"{DASHBOARDS}/{board}"
    assert (
        client.put(path, json={"title": "x"}, headers=bearer(keys.acme_viewer)).status_code == 403
    )
    changed = client.put(path, json={"description": "new"}, headers=bearer(keys.acme_admin))
    assert changed.status_code == 200
    assert changed.json()["description"] == "new"
    assert changed.json()["title"] == "Ops"
    empty = client.put(path, json={"title": ""}, headers=bearer(keys.acme_admin))
    assert empty.status_code == 400


def test_platform_admin_creates_for_a_named_tenant(client: TestClient, keys: Keys) -> None:
    assert create(client, keys.platform).status_code == 400
    made = create(client, keys.platform, title="For globex", tenant="globex").json()
    assert made["tenant"] == "globex"
    globex = client.get(DASHBOARDS, headers=bearer(keys.globex_viewer)).json()["dashboards"]
    assert made["id"] in [d["id"] for d in globex]
    acme = client.get(DASHBOARDS, headers=bearer(keys.acme_viewer)).json()["dashboards"]
    assert made["id"] not in [d["id"] for d in acme]
    assert create(client, keys.acme_admin, tenant="globex").status_code == 403


# -- widget checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"metric": "nope"}, "no metric 'nope'"),
        ({"metric": "assignment_count", "version": 7}, "version 7"),
        ({"metric": "lead_hours_share", "grain": "week"}, "has no grain 'week'"),
        ({"group_by": ["hours"]}, "has no dimension 'hours'"),
        ({"type": "kpi", "group_by": ["role"]}, "kpi widget shows one value"),
        ({"type": "timeseries", "group_by": ["role", "status"]}, "at most one group_by"),
        ({"type": "breakdown"}, "exactly one group_by"),
        ({"type": "heatmap"}, "heatmap widget takes one group_by"),
        ({"type": "funnel", "group_by": ["role"]}, "lists its steps"),
        ({"range": "last_week"}, "range 'last_week'"),
        ({"range": "2024-05-01..2024-01-01"}, "is after"),
        ({"filters": [{"dimension": "hours", "op": "gt", "values": [1]}]}, "no dimension 'hours'"),
    ],
)
def test_widgets_that_do_not_fit_are_400_with_reasons(
    client: TestClient, keys: Keys, board: str, body: dict[str, Any], words: str
) -> None:
    response = add_widget(client, keys.acme_admin, board, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_widget"
    assert words in response.json()["error"]["message"]


def test_every_reason_is_given_at_once(client: TestClient, keys: Keys, board: str) -> None:
    response = add_widget(
        client,
        keys.acme_admin,
        board,
        metric="lead_hours_share",
        type="kpi",
        grain="week",
        group_by=["hours"],
    )
    message = response.json()["error"]["message"]
    assert "grain 'week'" in message
    assert "dimension 'hours'" in message
    assert "kpi widget" in message


def test_viewers_cannot_add_widgets(client: TestClient, keys: Keys, board: str) -> None:
    assert add_widget(client, keys.acme_viewer, board).status_code == 403


# -- widget data ---------------------------------------------------------------------------


def _added(client: TestClient, keys: Keys, board: str, **body: Any) -> str:
    response = add_widget(client, keys.acme_admin, board, **body)
    assert response.status_code == 201, response.text
    widget_id: str = response.json()["id"]
    return widget_id


def test_timeseries_by_role(client: TestClient, keys: Keys, board: str) -> None:
    widget = _added(client, keys, board, group_by=["role"], title="By role")
    body = data(client, keys.acme_viewer, widget).json()
    assert body["widget"] == {"id": widget, "title": "By role", "type": "timeseries"}
    assert body["metric"] == {"key": "assignment_count", "version": 1}
    assert body["grain"] == "month"
    assert [c["name"] for c in body["columns"]] == ["period", "role", "value"]
    assert body["rows"] == [
        ["2024-03-01", "crew", 1],
        ["2024-03-01", "lead", 1],
        ["2024-04-01", "crew", 1],
    ]
    assert body["freshness"]["status"] == "fresh"
    assert body["cached"] is False


def test_kpi_compares_with_the_range_before(client: TestClient, keys: Keys, board: str) -> None:
    widget = _added(client, keys, board, type="kpi", grain="day", range="2024-03-16..2024-04-30")
    body = data(client, keys.acme_viewer, widget).json()
    assert [c["name"] for c in body["columns"]] == ["value", "previous", "change"]
    # 2024-03-16..04-30 holds a3; the 46 days before it (01-30..03-15) a1 and a2
    assert body["rows"] == [[1, 2, -1]]


def test_breakdown_is_a_ratio_of_sums_per_value(client: TestClient, keys: Keys, board: str) -> None:
    widget = _added(
        client, keys, board, type="breakdown", metric="lead_hours_share", group_by=["role"]
    )
    body = data(client, keys.acme_viewer, widget).json()
    assert [c["name"] for c in body["columns"]] == ["role", "value"]
    assert body["rows"] == [["lead", 1.0], ["crew", 0.0]]  # by value, largest first


def test_funnel_keeps_the_step_order(client: TestClient, keys: Keys, board: str) -> None:
    widget = _added(
        client,
        keys,
        board,
        type="funnel",
        group_by=["role"],
        filters=[{"dimension": "role", "op": "in", "values": ["lead", "crew", "manager"]}],
    )
    body = data(client, keys.acme_viewer, widget).json()
    assert body["rows"] == [["lead", 1], ["crew", 2], ["manager", None]]


def test_heatmaps(client: TestClient, keys: Keys, board: str) -> None:
    two = _added(client, keys, board, type="heatmap", group_by=["role", "job_title"])
    body = data(client, keys.acme_viewer, two).json()
    assert [c["name"] for c in body["columns"]] == ["role", "job_title", "value"]
    assert sorted(body["rows"], key=str) == sorted(
        [["crew", "cook", 1], ["crew", None, 1], ["lead", "driver", 1]], key=str
    )
    one = _added(client, keys, board, type="heatmap", group_by=["role"], grain="quarter")
    body = data(client, keys.acme_viewer, one).json()
    assert body["rows"] == [
        ["2024-01-01", "crew", 1],
        ["2024-01-01", "lead", 1],
        ["2024-04-01", "crew", 1],
    ]


def test_a_range_in_the_request_wins(client: TestClient, keys: Keys, board: str) -> None:
    widget = _added(client, keys, board)
    body = data(client, keys.acme_viewer, widget, start="2024-04-01", end="2024-04-30").json()
    assert (body["start"], body["end"]) == ("2024-04-01", "2024-04-30")
    assert body["rows"] == [["2024-04-01", 1]]
    half = data(client, keys.acme_viewer, widget, start="2024-04-01")
    assert half.status_code == 400
    bad = data(client, keys.acme_viewer, widget, start="2024-04-01", end="April")
    assert bad.status_code == 400


def test_file_widgets_show_each_tenant_its_own_rows(client: TestClient, keys: Keys) -> None:
    acme = data(client, keys.acme_viewer, f"{FILE_DASHBOARD}-2").json()
    globex = data(client, keys.globex_viewer, f"{FILE_DASHBOARD}-2").json()
    assert SECRET not in str(acme)
    assert globex["rows"] == [[SECRET, 0.0]]
    assert acme["rows"] == [["driver", 1.0], ["cook", 0.0], [None, 0.0]]


def test_another_tenants_widget_is_404(client: TestClient, keys: Keys, board: str) -> None:
    widget = _added(client, keys, board)
    assert data(client, keys.globex_viewer, widget).status_code == 404
    assert data(client, keys.globex_admin, "nope").status_code == 404
    admin = data(client, keys.platform, widget)
    assert admin.status_code == 400
    assert data(client, keys.platform, widget, tenant="acme").status_code == 200
    assert data(client, keys.platform, widget, tenant="globex").status_code == 404
