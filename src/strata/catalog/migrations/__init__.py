"""Alembic environment and catalog schema revisions, run by ``strata.catalog.migrate``."""
