"""Run a project: build the selected models wave by wave, recording one run in the catalog.

Everything that can be checked without data is checked before anything runs: every model
parses, every silver model passes the silver lint, the DAG has no missing reference or
cycle, every silver model reading an extracted source reads the one its YAML declares, and
the selection names real models. Then the models of each DAG wave run in a
small thread pool. A model that fails marks every model downstream of it ``skipped``;
models that do not depend on it still run. The run and one step per model are recorded in
the catalog.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from strata.catalog.store import Catalog
from strata.core.errors import ConfigError
from strata.core.identifiers import validate_tenant
from strata.transform.config import Layer
from strata.transform.dag import ModelDag, build_dag
from strata.transform.engine import TenantScope
from strata.transform.extracted import check_extracted_source
from strata.transform.gate import PublishGate
from strata.transform.gold import build_gold
from strata.transform.project import Project, load_project
from strata.transform.selection import select as select_models
from strata.transform.silver import build_silver
from strata.transform.sql import ModelSql, lint_silver, parse_model

MAX_WORKERS: Final = 2

ModelStatus = Literal["succeeded", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class ModelResult:
    name: str
    layer: Layer
    status: ModelStatus
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    results: tuple[ModelResult, ...]  # in topological order

    @property
    def failed(self) -> tuple[ModelResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def ok(self) -> bool:
        return all(r.status == "succeeded" for r in self.results)

    def result(self, name: str) -> ModelResult:
        for item in self.results:
            if item.name == name:
                return item
        raise KeyError(name)


Progress = Callable[[ModelResult], None]


@dataclass(frozen=True, slots=True)
class PreparedProject:
    """A loaded project with every model parsed and linted, and its DAG."""

    project: Project
    models: Mapping[str, ModelSql]
    dag: ModelDag
    lake: Path


# (project, catalog, run id, tenant or None) -> the run's publish gate, open for the run.
GateFactory = Callable[
    ["PreparedProject", Catalog, str, str | None], AbstractContextManager[PublishGate | None]
]


def prepare_project(root: str | os.PathLike[str]) -> PreparedProject:
    """Load, parse, lint and link the project at ``root``; raises the first problem."""
    project = load_project(root)
    models = {name: parse_model(name, pm.layer, pm.sql_text) for name, pm in project.models.items()}
    for name in sorted(models):
        if models[name].layer == "silver":
            lint_silver(models[name])
            check_extracted_source(models[name], project.models[name].config)
    dag = build_dag(models)
    return PreparedProject(project, models, dag, local_lake(project))


def local_lake(project: Project) -> Path:
    url = project.config.lake_url
    if "://" in url:
        raise ConfigError(f"strata run needs a local lake folder, not {url}")
    return Path(url)


def run_project(
    root: str | os.PathLike[str],
    *,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    tenant: str | None = None,
    gate: GateFactory | None = None,
) -> RunSummary:
    """Build the models ``select``/``exclude`` pick (all by default) in dependency order.

    ``run_id`` adopts a run already recorded as running (the query API records it first so
    it can answer with the id at once); without it the run is recorded here. ``tenant``
    limits the run to that tenant's bronze and that tenant's rows of every table. ``gate``
    opens the run's publish gate (``strata.quality.gate.quality_gate``): every new table
    version passes it before it is recorded, and a refused one fails its model.
    """
    prepared = prepare_project(root)
    chosen = select_models(prepared.dag, select, exclude)
    own_catalog = catalog is None
    cat = catalog or Catalog.open(prepared.project.config.catalog_url)
    try:
        scope = None
        if tenant is not None:
            scope = TenantScope(prepared.project.config.tenant_key, validate_tenant(tenant))
        return _Run(prepared, cat, full_refresh, progress, scope, gate).execute(
            chosen, select, exclude, run_id
        )
    finally:
        if own_catalog:
            cat.close()


class _Run:
    def __init__(
        self,
        prepared: PreparedProject,
        catalog: Catalog,
        full_refresh: bool,
        progress: Progress | None,
        scope: TenantScope | None = None,
        gate_factory: GateFactory | None = None,
    ) -> None:
        self.scope = scope
        self.gate_factory = gate_factory
        self.gate: PublishGate | None = None
        self.prepared = prepared
        self.catalog = catalog
        self.full_refresh = full_refresh
        self.progress = progress
        self.layers: dict[str, Layer] = {n: m.layer for n, m in prepared.models.items()}

    def execute(
        self, chosen: list[str], select: str | None, exclude: str | None, run_id: str | None
    ) -> RunSummary:
        params = {
            "select": select,
            "exclude": exclude,
            "full_refresh": self.full_refresh,
            "tenant": None if self.scope is None else self.scope.tenant,
        }
        run_id = run_id or self.catalog.start_run("transform", params=params)
        results: dict[str, ModelResult] = {}
        tenant = None if self.scope is None else self.scope.tenant
        gates = (
            self.gate_factory(self.prepared, self.catalog, run_id, tenant)
            if self.gate_factory is not None
            else nullcontext(None)
        )
        try:
            with gates as gate:
                self.gate = gate
                self._run_waves(run_id, chosen, results)
        except BaseException as exc:
            self.catalog.finish_run(run_id, "failed", f"run aborted: {exc}")
            raise
        ordered = tuple(results[name] for name in chosen)
        failed = [r.name for r in ordered if r.status == "failed"]
        if failed:
            self.catalog.finish_run(run_id, "failed", f"model(s) failed: {', '.join(failed)}")
        else:
            self.catalog.finish_run(run_id, "succeeded")
        return RunSummary(run_id, ordered)

    def _run_waves(self, run_id: str, chosen: list[str], results: dict[str, ModelResult]) -> None:
        for name in chosen:
            self.catalog.record_step(run_id, name, "queued")
        doomed: set[str] = set()
        wanted = set(chosen)
        for wave in self.prepared.dag.waves():
            names = [n for n in wave if n in wanted]
            runnable = [n for n in names if n not in doomed]
            for name in names:
                if name in doomed:
                    results[name] = self._finish(
                        run_id, ModelResult(name, self.layers[name], "skipped")
                    )
            for result in self._run_wave(run_id, runnable):
                results[result.name] = result
                if result.status == "failed":
                    doomed |= self.prepared.dag.downstream(result.name)

    def _run_wave(self, run_id: str, names: list[str]) -> list[ModelResult]:
        if not names:
            return []
        for name in names:
            self.catalog.record_step(run_id, name, "running")
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(names))) as pool:
            futures: list[Future[ModelResult]] = [
                pool.submit(self._build, run_id, name) for name in names
            ]
            return [self._finish(run_id, future.result()) for future in futures]

    def _finish(self, run_id: str, result: ModelResult) -> ModelResult:
        self.catalog.record_step(
            run_id,
            result.name,
            result.status,
            rows_in=result.rows_in,
            rows_out=result.rows_out,
            error=result.error,
        )
        if self.progress is not None:
            self.progress(result)
        return result

    def _build(self, run_id: str, name: str) -> ModelResult:
        """Build one model; any failure becomes a failed result, so the run goes on."""
        model = self.prepared.models[name]
        config = self.prepared.project.models[name].config
        lake = self.prepared.lake
        start = time.perf_counter()
        try:
            if model.layer == "silver":
                silver = build_silver(
                    model,
                    config,
                    lake,
                    self.catalog,
                    full_refresh=self.full_refresh,
                    run_id=run_id,
                    scope=self.scope,
                    gate=self.gate,
                )
                rows_in, rows_out = silver.rows_in, silver.rows_out
            else:
                gold = build_gold(
                    model,
                    config,
                    lake,
                    self.catalog,
                    run_id=run_id,
                    full_refresh=self.full_refresh,
                    layers=self.layers,
                    scope=self.scope,
                    gate=self.gate,
                )
                rows_in, rows_out = gold.rows_in, gold.rows_out
        except Exception as exc:  # one model's failure must not stop independent models
            seconds = time.perf_counter() - start
            return ModelResult(name, model.layer, "failed", seconds=seconds, error=str(exc))
        seconds = time.perf_counter() - start
        return ModelResult(name, model.layer, "succeeded", rows_in, rows_out, seconds)
