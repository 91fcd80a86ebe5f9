"""Initial catalog: runs, run steps, model state, consumed bronze files, table versions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Names are wrapped in ``op.f`` so they are final: the models' naming convention must not
be applied to them a second time. Self-contained on purpose: a revision must keep producing
the same schema after ``schema.py`` moves on, so it does not import the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_RUN_STATUSES = "'queued', 'running', 'succeeded', 'failed', 'cancelled'"
_STEP_STATUSES = _RUN_STATUSES + ", 'skipped'"


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", json, nullable=False),
        sa.Column("triggered_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.CheckConstraint(f"status IN ({_RUN_STATUSES})", name=op.f("ck_runs_status")),
    )
    op.create_index(op.f("ix_runs_status"), "runs", ["status"])
    op.create_index(op.f("ix_runs_kind_started_at"), "runs", ["kind", "started_at"])

    op.create_table(
        "run_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_in", sa.BigInteger(), nullable=True),
        sa.Column("rows_out", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_steps")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_steps_run_id_runs"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_run_steps_run_id_name")),
        sa.CheckConstraint(f"status IN ({_STEP_STATUSES})", name=op.f("ck_run_steps_status")),
    )

    op.create_table(
        "model_state",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("last_run_id", sa.String(36), nullable=True),
        sa.Column("config_hash", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_model_state")),
        sa.ForeignKeyConstraint(
            ["last_run_id"],
            ["runs.id"],
            name=op.f("fk_model_state_last_run_id_runs"),
            ondelete="SET NULL",
        ),
    )
    op.create_index(op.f("ix_model_state_last_run_id"), "model_state", ["last_run_id"])

    op.create_table(
        "consumed_files",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("bronze_path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("consumed_in_run", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("model", "bronze_path", name=op.f("pk_consumed_files")),
        sa.ForeignKeyConstraint(
            ["model"],
            ["model_state.model"],
            name=op.f("fk_consumed_files_model_model_state"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["consumed_in_run"],
            ["runs.id"],
            name=op.f("fk_consumed_files_consumed_in_run_runs"),
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        op.f("ix_consumed_files_consumed_in_run"), "consumed_files", ["consumed_in_run"]
    )

    op.create_table(
        "table_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_table_versions")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_table_versions_run_id_runs"), ondelete="SET NULL"
        ),
        sa.UniqueConstraint(
            "table_name", "version", name=op.f("uq_table_versions_table_name_version")
        ),
    )
    op.create_index(op.f("ix_table_versions_run_id"), "table_versions", ["run_id"])


def downgrade() -> None:
    op.drop_table("table_versions")
    op.drop_table("consumed_files")
    op.drop_table("model_state")
    op.drop_table("run_steps")
    op.drop_table("runs")
