"""Extractors: incremental copies of source databases into bronze, with watermarks."""

from strata.extract.config import SourceConfig, SourceNotFoundError, TableSpec, load_source
from strata.extract.sql import EntityResult, ExtractError, ExtractSummary, extract_source

__all__ = [
    "EntityResult",
    "ExtractError",
    "ExtractSummary",
    "SourceConfig",
    "SourceNotFoundError",
    "TableSpec",
    "extract_source",
    "load_source",
]
