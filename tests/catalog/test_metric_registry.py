"""The metric registry against real databases: a SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from strata.catalog import Catalog, CatalogError, migrate
from strata.catalog.config import engine_url
from strata.catalog.metrics import MetricRegistration, MetricVersionConflict
from strata.semantic.metrics import Measure, MetricDefinition

OCCUPANCY = MetricDefinition(
    "occupancy",
    3,
    "ratio",
    explore="room_nights",
    time_dimension="stay_date",
    numerator=Measure("sum", "rooms_sold"),
    denominator=Measure("sum", "rooms_available"),
    dimensions=("channel",),
    filters=("status <> 'cancelled'",),
)
REVENUE = MetricDefinition(
    "room_revenue",
    1,
    "simple",
    explore="room_nights",
    time_dimension="stay_date",
    measure=Measure("sum", "room_revenue"),
)


def test_register_then_register_again_is_unchanged(catalog: Catalog) -> None:
    assert catalog.register_metrics([OCCUPANCY, REVENUE]) == [
        ("occupancy", 3, "new"),
        ("room_revenue", 1, "new"),
    ]
    again = catalog.register_metrics([REVENUE, OCCUPANCY])
    assert again == [("room_revenue", 1, "unchanged"), ("occupancy", 3, "unchanged")]
    assert again[0] == MetricRegistration("room_revenue", 1, "unchanged")
    stored = catalog.metric("occupancy")
    assert stored is not None
    assert (stored.key, stored.version, stored.definition_hash) == (
        "occupancy",
        3,
        OCCUPANCY.content_hash,
    )
    assert MetricDefinition.from_dict(stored.definition) == OCCUPANCY
    assert stored.registered_at.tzinfo is not None


def test_a_changed_definition_needs_a_new_version(catalog: Catalog) -> None:
    catalog.register_metrics([OCCUPANCY])
    changed = dataclasses.replace(OCCUPANCY, filters=())
    with pytest.raises(MetricVersionConflict) as caught:
        catalog.register_metrics([REVENUE, changed])  # REVENUE is new, but nothing applies
    assert str(caught.value) == (
        "metric 'occupancy' version 3 is already registered with a different definition;"
        " change the version to change the definition"
    )
    assert caught.value.conflicts == (("occupancy", 3),)
    assert isinstance(caught.value, CatalogError)
    assert catalog.metric("room_revenue") is None
    assert catalog.latest_metrics()[0].definition_hash == OCCUPANCY.content_hash

    bumped = dataclasses.replace(changed, version=4)
    assert catalog.register_metrics([REVENUE, bumped]) == [
        ("room_revenue", 1, "new"),
        ("occupancy", 4, "new"),
    ]


def test_several_conflicts_are_named_together(catalog: Catalog) -> None:
    catalog.register_metrics([OCCUPANCY, REVENUE])
    with pytest.raises(MetricVersionConflict, match="'occupancy' version 3, 'room_revenue'"):
        catalog.register_metrics(
            [
                dataclasses.replace(OCCUPANCY, description="Changed."),
                dataclasses.replace(REVENUE, owner="someone"),
            ]
        )


def test_versions_latest_and_lookup(catalog: Catalog) -> None:
    v1 = dataclasses.replace(OCCUPANCY, version=1, filters=())
    v10 = dataclasses.replace(OCCUPANCY, version=10, description="Newest.")
    catalog.register_metrics([OCCUPANCY, v10, REVENUE])
    catalog.register_metrics([v1])
    assert [m.version for m in catalog.metric_versions("occupancy")] == [1, 3, 10]
    assert catalog.metric_versions("nothing") == []
    latest = catalog.latest_metrics()
    assert [(m.key, m.version) for m in latest] == [("occupancy", 10), ("room_revenue", 1)]
    assert MetricDefinition.from_dict(latest[0].definition) == v10
    found = catalog.metric("occupancy", 1)
    assert found is not None
    assert MetricDefinition.from_dict(found.definition) == v1
    assert catalog.metric("occupancy", 2) is None
    assert catalog.metric("nothing") is None
    assert catalog.register_metrics([]) == []


@dataclass(frozen=True)
class Document:
    key: str
    version: int
    content_hash: str = "0" * 64

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "version": self.version}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([Document("Occupancy", 1)], "metric key 'Occupancy' is not a valid name"),
        ([Document("occupancy", 0)], "version must be 1..2\\*\\*31-1, not 0"),
        ([Document("occupancy", True)], "version must be"),
        ([Document("occupancy", 1, "xyz")], "content hash must be 64 lowercase hex"),
        ([Document("occupancy", 1), Document("occupancy", 1)], "version 1 is listed twice"),
    ],
)
def test_bad_input_is_refused_before_writing(
    catalog: Catalog, items: list[Document], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog.register_metrics(items)
    assert catalog.latest_metrics() == []


def test_concurrent_registrations_of_the_same_version_agree(catalog_url: str) -> None:
    results: list[list[MetricRegistration]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)
    with Catalog.open(catalog_url) as catalog:

        def register() -> None:
            try:
                barrier.wait()
                results.append(catalog.register_metrics([OCCUPANCY, REVENUE]))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        statuses = sorted(r[0].status for r in results)
        assert statuses == ["new", "unchanged", "unchanged", "unchanged"]
        assert len(catalog.metric_versions("occupancy")) == 1


def test_downgrade_to_0002_drops_the_registry(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        catalog.register_metrics([OCCUPANCY])
        run_id = catalog.start_run("transform")
    engine = sa.create_engine(engine_url(catalog_url))
    try:
        with engine.begin() as connection:
            migrate.downgrade(connection, "0002")
        assert "metric_versions" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision()
        assert catalog.latest_metrics() == []
        assert catalog.get_run(run_id).kind == "transform"
