"""Data-quality results: one row per run, table, tenant and check.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("table_name", sa.String(200), nullable=False),
        sa.Column("table_version", sa.BigInteger(), nullable=True),
        sa.Column("check_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("failing", sa.BigInteger(), nullable=True),
        sa.Column("measured", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("samples", _JSON, nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_results")),
        sa.CheckConstraint(
            "status IN ('pass', 'warn', 'error')", name=op.f("ck_check_results_status")
        ),
    )
    op.create_index(
        "ix_check_results_lookup",
        "check_results",
        ["table_name", "check_name", "tenant", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_check_results_lookup", table_name="check_results")
    op.drop_table("check_results")
