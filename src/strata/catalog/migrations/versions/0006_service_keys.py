"""Ingest keys of the HTTP collector: an ``ingest`` role bound to one namespace, whose
tenant is optional (without one, each record names its tenant).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Self-contained like 0001: the role list is spelled out, not imported from the code. Batch
mode, because SQLite cannot alter a CHECK constraint in place (the table is recreated);
PostgreSQL gets plain ALTER TABLE statements.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OLD_ROLES = "'viewer', 'tenant_admin', 'platform_admin', 'service'"
_NEW_ROLES = f"{_OLD_ROLES}, 'ingest'"
_OLD_TENANT_SCOPE = (
    "(role = 'platform_admin' AND tenant IS NULL)"
    " OR (role <> 'platform_admin' AND tenant IS NOT NULL)"
)
_NEW_TENANT_SCOPE = (
    "(role = 'platform_admin' AND tenant IS NULL)"
    " OR role = 'ingest'"
    " OR (role NOT IN ('platform_admin', 'ingest') AND tenant IS NOT NULL)"
)
_NAMESPACE_SCOPE = (
    "(role = 'ingest' AND namespace IS NOT NULL) OR (role <> 'ingest' AND namespace IS NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("namespace", sa.String(63), nullable=True))
        batch.drop_constraint(op.f("ck_api_keys_role"), type_="check")
        batch.drop_constraint(op.f("ck_api_keys_tenant_scope"), type_="check")
        batch.create_check_constraint(op.f("ck_api_keys_role"), f"role IN ({_NEW_ROLES})")
        batch.create_check_constraint(op.f("ck_api_keys_tenant_scope"), _NEW_TENANT_SCOPE)
        batch.create_check_constraint(op.f("ck_api_keys_namespace_scope"), _NAMESPACE_SCOPE)


def downgrade() -> None:
    # Ingest keys cannot exist before this revision: they go, as their table rows would
    # break the older constraints.
    op.execute(sa.text("DELETE FROM api_keys WHERE role = 'ingest'"))
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("ck_api_keys_namespace_scope"), type_="check")
        batch.drop_constraint(op.f("ck_api_keys_tenant_scope"), type_="check")
        batch.drop_constraint(op.f("ck_api_keys_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_keys_role"), f"role IN ({_OLD_ROLES})")
        batch.create_check_constraint(op.f("ck_api_keys_tenant_scope"), _OLD_TENANT_SCOPE)
        batch.drop_column("namespace")
