"""Dashboards and widgets against real databases: a SQLite file and a fresh PostgreSQL one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from strata.catalog import Catalog, CatalogError, migrate
from strata.catalog.config import engine_url
from strata.catalog.dashboards import FileDashboard, NewWidget

COUNT = NewWidget("Assignments", "timeseries", "assignment_count", None, "month", ("role",))
KPI = NewWidget("Total", "kpi", "assignment_count", 1, "day", (), (), "last_30_days")


def test_a_tenant_sees_its_own_dashboards_and_the_file_ones(catalog: Catalog) -> None:
    mine = catalog.create_dashboard("acme", "Ops", "daily", created_by="key1")
    catalog.create_dashboard("globex", "Theirs")
    catalog.sync_file_dashboards([FileDashboard("file-overview", "Overview", "", (COUNT,))])
    listed = catalog.list_dashboards("acme")
    assert [(d.id, d.source, d.tenant) for d in listed] == [
        ("file-overview", "file", None),
        (mine.id, "api", "acme"),
    ]
    assert listed[0].widgets[0].id == "file-overview-0"
    assert len(catalog.list_dashboards(None)) == 3


def test_widgets_are_appended_in_order_and_read_with_their_tenant(catalog: Catalog) -> None:
    board = catalog.create_dashboard("acme", "Ops")
    first = catalog.add_widget(board.id, COUNT)
    second = catalog.add_widget(board.id, KPI)
    assert first is not None
    assert second is not None
    assert (first.position, second.position) == (0, 1)
    read = catalog.widget(second.id)
    assert read == second
    assert read.tenant == "acme"
    assert read.default_range == "last_30_days"
    assert read.metric_version == 1
    stored = catalog.dashboard(board.id)
    assert stored is not None
    assert [w.id for w in stored.widgets] == [first.id, second.id]
    assert catalog.add_widget("nope", COUNT) is None
    assert catalog.widget("nope") is None


def test_update_changes_api_dashboards_only(catalog: Catalog) -> None:
    board = catalog.create_dashboard("acme", "Ops")
    updated = catalog.update_dashboard(board.id, title="Operations")
    assert updated is not None
    assert updated.title == "Operations"
    assert updated.updated_at > board.updated_at
    assert catalog.update_dashboard("missing", title="x") is None
    catalog.sync_file_dashboards([FileDashboard("file-x", "X", "", ())])
    with pytest.raises(CatalogError, match="edit the file"):
        catalog.update_dashboard("file-x", title="y")
    with pytest.raises(CatalogError, match="edit the file"):
        catalog.add_widget("file-x", COUNT)


def test_sync_rewrites_changed_files_and_drops_removed_ones(catalog: Catalog) -> None:
    catalog.sync_file_dashboards(
        [FileDashboard("file-a", "A", "", (COUNT,)), FileDashboard("file-b", "B", "", ())]
    )
    before = catalog.dashboard("file-a")
    catalog.sync_file_dashboards([FileDashboard("file-a", "A", "", (COUNT,))])  # same: no write
    assert catalog.dashboard("file-a") == before
    assert catalog.dashboard("file-b") is None
    catalog.sync_file_dashboards([FileDashboard("file-a", "A2", "", (KPI, COUNT))])
    after = catalog.dashboard("file-a")
    assert after is not None
    assert before is not None
    assert after.title == "A2"
    assert after.created_at == before.created_at
    assert [(w.id, w.type) for w in after.widgets] == [
        ("file-a-0", "kpi"),
        ("file-a-1", "timeseries"),
    ]


def test_downgrade_to_0003_drops_the_dashboards(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        catalog.create_dashboard("acme", "Ops")
    engine = sa.create_engine(engine_url(catalog_url))
    try:
        with engine.begin() as connection:
            migrate.downgrade(connection, "0003")
        assert {"dashboards", "widgets"}.isdisjoint(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision() == "0007"
        assert catalog.list_dashboards(None) == []
