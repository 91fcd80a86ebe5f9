"""Strata: a multi-tenant analytics lakehouse for SaaS platforms.

The packages follow the flow of data: ``core`` (shared vocabulary), ``lake`` (storage and
the bronze path scheme), ``ingest`` (the SDK and its background writer), and the
composition roots (``cli``) that wire them together.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
