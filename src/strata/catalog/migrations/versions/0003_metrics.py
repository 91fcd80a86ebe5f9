"""The metric registry: each registered (key, version) of a metric and its definition.

Revision ID: 0003
Revises: 0002
Create Date: 2025-07-01

Self-contained like 0001: no import of the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "metric_versions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("definition", json, nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "version", name=op.f("pk_metric_versions")),
        sa.CheckConstraint("version > 0", name=op.f("ck_metric_versions_version")),
    )


def downgrade() -> None:
    op.drop_table("metric_versions")
