"""API keys of the query API: who may call it, with only a hash of each secret.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01

Self-contained like 0001: the role list is spelled out, not imported from the code.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ROLES = "'viewer', 'tenant_admin', 'platform_admin', 'service'"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.CheckConstraint(f"role IN ({_ROLES})", name=op.f("ck_api_keys_role")),
        sa.CheckConstraint(
            "(role = 'platform_admin' AND tenant IS NULL)"
            " OR (role <> 'platform_admin' AND tenant IS NOT NULL)",
            name=op.f("ck_api_keys_tenant_scope"),
        ),
    )
    op.create_index(op.f("ix_api_keys_tenant"), "api_keys", ["tenant"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_tenant"), table_name="api_keys")
    op.drop_table("api_keys")
