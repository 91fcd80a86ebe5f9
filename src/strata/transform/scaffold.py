"""``strata init``: lay out a new project folder, optionally with a small working example.

The example models the demo's worker profiles (``bronze.wfm.profiles``, see
``strata.demo.workforce``) so a fresh project runs against ``strata demo`` data at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from strata.core.identifiers import validate_name
from strata.transform.config import DEFAULT_TENANT_KEY, ProjectError
from strata.transform.project import PROJECT_FILE

FOLDERS: Final = (
    "models/silver",
    "models/gold",
    "explores",
    "metrics",
    "checks",
    "dashboards",
    "sources",
)
GITIGNORED: Final = ("lake/", ".strata/")

_PROJECT_TOML: Final = """\
# Strata project settings. STRATA_LAKE and STRATA_CATALOG_URL override the two URLs.
name = "{name}"
# The column naming the tenant in every table; explores refuse models without it.
tenant_key = "{tenant_key}"
# Lake folder or URL (s3://, abfs://, gs://). A relative folder is inside this project.
lake_url = "./lake"
# Catalog database: SQLite by default, or postgresql://user@host/db.
catalog_url = "sqlite:///.strata/catalog.db"
"""

_EXAMPLE: Final = {
    "models/silver/profiles.sql": """\
-- Structural only: cast, rename and tidy the service's worker profiles; no joins.
-- Strata keeps the latest ingested version per primary key and drops soft-deleted rows.
select
    cast(id as varchar) as id,
    cast(company_id as varchar) as company_id,
    nullif(trim(rut), '') as rut,
    first_name,
    last_name,
    lower(trim(email)) as email,
    phone,
    job_title,
    status,
    cast(hired_on as date) as hired_on,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at
from bronze.wfm.profiles
""",
    "models/silver/profiles.yml": """\
description: Worker profiles from the workforce-management service, one row per worker.
primary_key: [company_id, id]
soft_delete_column: deleted_at
columns:
  id:
    description: The profile's id (a UUID).
  company_id:
    description: The tenant (company) the worker belongs to.
  rut:
    description: Chilean national id; missing on a few source rows.
    pii: true
  first_name:
    pii: true
  last_name:
    pii: true
  email:
    description: Lowercased and trimmed; a few source values are malformed.
    pii: true
  phone:
    pii: true
  status:
    description: active or inactive.
  deleted_at:
    description: Set when the service soft-deleted the profile.
""",
    "models/gold/dim_workers.sql": """\
select
    id as worker_id,
    company_id,
    job_title,
    status,
    hired_on,
    status = 'active' as is_active
from silver.profiles
""",
    "models/gold/dim_workers.yml": """\
description: Workers, one row per profile, with the fields analysts slice by.
materialized: tenant_partition
partition_by: company_id
primary_key: [company_id, worker_id]
columns:
  worker_id:
    description: The worker's profile id.
  company_id:
    description: The tenant; every explore joins on it too.
  job_title:
    description: operator, driver, supervisor, ...
  is_active:
    description: Whether the worker is currently active.
""",
    "explores/workers.yml": """\
description: Headcount by job title, status and hiring date.
fact: dim_workers
# Dimensions join on their keys and, always, on the tenant key:
# dimensions:
#   - model: dim_projects
#     fact_key: project_id
#     dimension_key: project_id
""",
}


def init_project(path: str | os.PathLike[str], name: str, *, with_example: bool = True) -> Path:
    """Create a project named ``name`` at ``path`` and return its absolute root.

    Refuses a folder with anything in it but dotfiles (``.git``, an editor's settings), so
    ``strata init`` can follow ``git init`` but never overwrites someone's work.
    """
    root = Path(path).resolve()
    validate_name(name, "project")
    if root.exists() and not root.is_dir():
        raise ProjectError(str(root), None, "exists and is not a folder")
    if root.is_dir():
        taken = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        if taken:
            shown = ", ".join(taken[:3]) + (", ..." if len(taken) > 3 else "")
            raise ProjectError(str(root), None, f"is not empty ({shown}); use a new folder")
    root.mkdir(parents=True, exist_ok=True)
    files = {PROJECT_FILE: _PROJECT_TOML.format(name=name, tenant_key=DEFAULT_TENANT_KEY)}
    if with_example:
        files.update(_EXAMPLE)
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
        if not any(f.startswith(f"{folder}/") for f in files):
            (root / folder / ".gitkeep").touch()  # git does not keep empty folders
    for rel, text in files.items():
        (root / rel).write_text(text, encoding="utf-8")
    _ignore(root / ".gitignore")
    return root


def _ignore(gitignore: Path) -> None:
    """Add the lake and local state to ``.gitignore``, keeping lines already there."""
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    missing = [entry for entry in GITIGNORED if entry not in existing.splitlines()]
    if not missing:
        return
    if existing and not existing.endswith("\n"):
        existing += "\n"
    gitignore.write_text(existing + "\n".join(missing) + "\n", encoding="utf-8")
