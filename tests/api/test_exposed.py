"""What is exposed: declared from the project, served once built and tenant-partitioned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from strata.api.exposed import ExposedTables, declare_exposed
from strata.semantic.sandbox import SandboxClosedError, SandboxLimits
from strata.transform.project import load_project
from strata.transform.scaffold import init_project
from strata.transform.tables import write_table

WORKERS = pa.table(
    {
        "worker_id": ["1", "2", "g1"],
        "company_id": ["acme", "acme", "globex"],
        "job_title": ["driver", "cook", "pilot"],
    }
)


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[ExposedTables]:
    project = load_project(init_project(tmp_path / "proj", "proj"), environ={})
    lake = Path(project.config.lake_url)
    declared = declare_exposed(project, ["profiles"])
    tables = ExposedTables(project, lake, declared, limits=SandboxLimits(), max_open=2)
    yield tables
    tables.close()


def test_declared_from_the_project(exposed: ExposedTables) -> None:
    declared = exposed.declared
    assert sorted(declared) == ["explore.workers", "gold.dim_workers", "silver.profiles"]
    explore = declared["explore.workers"]
    assert (explore.layer, explore.tables, explore.select) == (
        "explore",
        ("gold.dim_workers",),
        "+dim_workers",
    )


def test_nothing_is_served_before_it_is_built(exposed: ExposedTables) -> None:
    served = exposed.current()
    assert dict(served.exposed) == {}
    assert exposed.current() is served  # nothing changed: the same pool


def test_a_table_is_served_once_built(exposed: ExposedTables) -> None:
    before = exposed.current()
    write_table(exposed.lake / "gold" / "dim_workers", WORKERS, "overwrite", ["company_id"])
    after = exposed.current()
    assert after is not before
    assert sorted(after.exposed) == ["explore.workers", "gold.dim_workers"]
    assert after.sources(["explore.workers", "gold.dim_workers"]) == ("gold.dim_workers",)
    rows = after.pool.run("acme", "select job_title from explore.workers order by 1")
    assert rows.column("job_title").to_pylist() == ["cook", "driver"]
    with pytest.raises(SandboxClosedError):
        before.pool.get("acme")


def test_a_table_not_partitioned_by_tenant_is_never_served(exposed: ExposedTables) -> None:
    write_table(exposed.lake / "gold" / "dim_workers", WORKERS, "overwrite")  # not partitioned
    assert dict(exposed.current().exposed) == {}
    # Rebuilt partitioned (a run would call recheck when it finishes): served.
    write_table(exposed.lake / "gold" / "dim_workers", WORKERS, "overwrite", ["company_id"])
    assert dict(exposed.current().exposed) == {}
    exposed.recheck()
    assert "gold.dim_workers" in exposed.current().exposed
