"""Model files shared by the test projects of the query API and the dashboards UI: an
assignments silver model over bronze, its gold fact, and the explore joining workers."""

from pathlib import Path

ASSIGNMENTS_SQL = """\
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    cast(profile_id as varchar) as profile_id,
    role,
    status,
    cast(hours as double) as hours,
    cast(start_date as date) as start_date,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.assignments
"""

FACT_SQL = """\
select
    id as assignment_id,
    company_id,
    profile_id as worker_id,
    role,
    status,
    hours,
    start_date
from silver.assignments
"""

EXPLORE = """\
description: Assignments with the worker's attributes.
fact: fct_assignments
dimensions:
  - model: dim_workers
    fact_key: worker_id
    dimension_key: worker_id
"""


def write_assignment_models(root: Path) -> None:
    """Write the assignments silver model, its gold fact and the explore into ``root``."""
    models = root / "models"
    (models / "silver" / "assignments.sql").write_text(ASSIGNMENTS_SQL)
    (models / "silver" / "assignments.yml").write_text(
        "primary_key: [company_id, id]\nsoft_delete_column: deleted_at\n"
    )
    (models / "gold" / "fct_assignments.sql").write_text(FACT_SQL)
    (models / "gold" / "fct_assignments.yml").write_text(
        "materialized: tenant_partition\npartition_by: company_id\n"
        "primary_key: [company_id, assignment_id]\n"
    )
    (root / "explores" / "assignments.yml").write_text(EXPLORE)
