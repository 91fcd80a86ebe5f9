"""The catalog's tables as SQLAlchemy 2 typed declarative models.

This module describes the *current* schema; the migrations under ``migrations/versions``
are the history that produces it. Change both together: add a column here, then a new
revision there (never edit a released revision).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StepStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "skipped"]
FinishedStatus = Literal["succeeded", "failed", "cancelled"]

RUN_STATUSES: Final[tuple[str, ...]] = get_args(RunStatus)
STEP_STATUSES: Final[tuple[str, ...]] = get_args(StepStatus)
FINISHED_STATUSES: Final[tuple[str, ...]] = get_args(FinishedStatus)

NAME_LENGTH: Final = 200
PATH_LENGTH: Final = 1024

# Stable constraint names on every backend, so later migrations can alter them by name
# (SQLite batch mode needs names to drop or recreate a constraint).
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC and given ``tzinfo=UTC`` again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"catalog timestamps must be timezone-aware, got {value!r}")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


JsonDocument = JSON().with_variant(JSONB(), "postgresql")


def _in_check(column: str, values: tuple[str, ...]) -> str:
    # Built from the module's own Literal constants, never from user input.
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """The Core ``Table`` behind a model, for bulk statements that skip the ORM."""
    return Base.metadata.tables[model.__tablename__]


class Run(Base):
    """One execution of a job: a transform, an extract, an ingest replay."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in_check("status", RUN_STATUSES), name="status"),
        Index(None, "status"),
        Index(None, "kind", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    triggered_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))


class RunStep(Base):
    """One unit inside a run, usually a model; unique per (run, name)."""

    __tablename__ = "run_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "name"),
        CheckConstraint(_in_check("status", STEP_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    rows_in: Mapped[int | None] = mapped_column(BigInteger)
    rows_out: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)


class ModelState(Base):
    """What the catalog remembers about a model between runs."""

    __tablename__ = "model_state"

    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    last_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    config_hash: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ConsumedFile(Base):
    """A bronze file a model has already read; the primary key answers "is it new?"."""

    __tablename__ = "consumed_files"

    model: Mapped[str] = mapped_column(
        ForeignKey("model_state.model", ondelete="CASCADE"), primary_key=True
    )
    bronze_path: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # Runs may be pruned later; the fact that a file was consumed must outlive its run.
    consumed_in_run: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )


class TableVersion(Base):
    """One committed version of a lake table, with its row count and producing run."""

    __tablename__ = "table_versions"
    __table_args__ = (UniqueConstraint("table_name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
