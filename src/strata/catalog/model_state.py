"""Per-model state: the last run and config hash, and which bronze files a model consumed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from strata.catalog import schema as db
from strata.catalog.base import CatalogBase, bounded, chunks
from strata.catalog.errors import CatalogError
from strata.catalog.records import FileRef, ModelState
from strata.catalog.schema import NAME_LENGTH, PATH_LENGTH
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

_INSERT_CHUNK: Final = 10_000


class ModelStateStore(CatalogBase):
    def model_state(self, model: str) -> ModelState | None:
        with self._session(write=False) as session:
            row = session.get(db.ModelState, model)
            return None if row is None else _model_state(row)

    def save_model_state(
        self, model: str, *, run_id: str | None, config_hash: str | None
    ) -> ModelState:
        """Remember a model's last run and the hash of the config it ran with."""
        with self._session(write=True) as session:
            if run_id is not None:
                self._require_run(session, run_id)
            self._touch_model(session, model, run_id)
            row = session.get(db.ModelState, model, populate_existing=True)
            if row is None:  # pragma: no cover - _touch_model has just written it
                raise CatalogError(f"model state of {model!r} vanished")
            row.config_hash = config_hash
            session.flush()
            return _model_state(row)

    def new_files(self, model: str, files: Iterable[tuple[str, int]]) -> list[FileRef]:
        """The files ``model`` has not consumed yet, in input order, without duplicates.

        A file is identified by its path (bronze is immutable). Only the consumed subset of
        the given paths is read back, one bounded chunk of paths per query, so the cost
        follows the input, not the size of the model's history.
        """
        wanted: dict[str, int] = {}
        for path, size in files:
            wanted.setdefault(path, size)
        consumed: set[str] = set()
        with self._session(write=False) as session:
            for chunk in chunks(list(wanted), self._backend.lookup_chunk):
                query = select(db.ConsumedFile.bronze_path).where(
                    db.ConsumedFile.model == model,
                    self._backend.path_in(db.ConsumedFile.bronze_path, chunk),
                )
                consumed.update(session.scalars(query))
        return [FileRef(path, size) for path, size in wanted.items() if path not in consumed]

    def mark_consumed(self, model: str, files: Iterable[tuple[str, int]], run_id: str) -> None:
        """Record that ``run_id`` consumed ``files`` for ``model``; known files stay as they are."""
        rows = [
            {"bronze_path": ref.path, "size": ref.size} for ref in _unique_files(files).values()
        ]
        constants = {"model": model, "consumed_in_run": run_id}
        with self._session(write=True) as session:
            self._require_run(session, run_id)
            self._touch_model(session, model, run_id)
            table = db.table_of(db.ConsumedFile)
            for chunk in chunks(rows, _INSERT_CHUNK):
                self._backend.bulk_insert_ignoring_duplicates(session, table, chunk, constants)
        log.info("files consumed", extra=fields(model=model, run_id=run_id, files=len(rows)))

    def consumed_count(self, model: str) -> int:
        query = (
            select(func.count()).select_from(db.ConsumedFile).where(db.ConsumedFile.model == model)
        )
        with self._session(write=False) as session:
            return int(session.scalar(query) or 0)

    def reset_model(self, model: str) -> int:
        """Forget every file ``model`` consumed, for a full refresh; returns how many."""
        with self._session(write=True) as session:
            result = session.execute(delete(db.ConsumedFile).where(db.ConsumedFile.model == model))
            count = int(getattr(result, "rowcount", 0))
        log.info("model reset", extra=fields(model=model, forgotten_files=count))
        return count

    def _touch_model(self, session: Session, model: str, run_id: str | None) -> None:
        """Create the model's row if needed (race-free) and point it at ``run_id``."""
        bounded(model, NAME_LENGTH, "model name")
        now = self._now()
        session.execute(
            self._backend.insert_ignoring_duplicates(db.ModelState).values(
                model=model, last_run_id=run_id, updated_at=now
            )
        )
        session.execute(
            update(db.ModelState)
            .where(db.ModelState.model == model)
            .values(last_run_id=run_id, updated_at=now)
        )


def _unique_files(files: Iterable[tuple[str, int]]) -> dict[str, FileRef]:
    unique: dict[str, FileRef] = {}
    for path, size in files:
        if path not in unique:
            if size < 0:
                raise CatalogError(f"bronze file {path!r} has a negative size {size}")
            unique[path] = FileRef(bounded(path, PATH_LENGTH, "bronze path"), int(size))
    return unique


def _model_state(row: db.ModelState) -> ModelState:
    return ModelState(row.model, row.last_run_id, row.config_hash, row.updated_at)
