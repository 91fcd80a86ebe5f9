"""Deterministic demo data (the workforce-compliance platform) and landing it in a lake."""

from strata.demo.landing import DemoSummary, SourceSummary, estimate_records, land_demo
from strata.demo.workforce import DemoRecord, DemoTenant, generate, plan_tenants

__all__ = [
    "DemoRecord",
    "DemoSummary",
    "DemoTenant",
    "SourceSummary",
    "estimate_records",
    "generate",
    "land_demo",
    "plan_tenants",
]
