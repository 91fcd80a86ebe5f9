"""Dashboards and their widgets: a tenant's own (made through the API) and the project's
file dashboards (``dashboards/*.yml``, no tenant: every tenant sees them).

Revision ID: 0004
Revises: 0003
Create Date: 2025-08-01

Self-contained like 0001: the widget types are spelled out, not imported from the code.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SOURCES = "'api', 'file'"
_TYPES = "'kpi', 'timeseries', 'breakdown', 'funnel', 'heatmap'"


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "dashboards",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboards")),
        sa.CheckConstraint(f"source IN ({_SOURCES})", name=op.f("ck_dashboards_source")),
        sa.CheckConstraint(
            "(source = 'file' AND tenant IS NULL) OR (source = 'api' AND tenant IS NOT NULL)",
            name=op.f("ck_dashboards_tenant_scope"),
        ),
    )
    op.create_index(op.f("ix_dashboards_tenant"), "dashboards", ["tenant"])
    op.create_table(
        "widgets",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dashboard_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("metric_key", sa.String(64), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=True),
        sa.Column("grain", sa.String(16), nullable=False),
        sa.Column("group_by", json, nullable=False),
        sa.Column("filters", json, nullable=False),
        sa.Column("default_range", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widgets")),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_widgets_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(f"type IN ({_TYPES})", name=op.f("ck_widgets_type")),
    )
    op.create_index(op.f("ix_widgets_dashboard_id"), "widgets", ["dashboard_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_widgets_dashboard_id"), table_name="widgets")
    op.drop_table("widgets")
    op.drop_index(op.f("ix_dashboards_tenant"), table_name="dashboards")
    op.drop_table("dashboards")
