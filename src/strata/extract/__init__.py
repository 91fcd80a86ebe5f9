"""Extractors: incremental copies of source databases and REST APIs into bronze."""

from strata.extract.config import SourceConfig, SourceNotFoundError, TableSpec, load_source
from strata.extract.rest import extract_rest_source
from strata.extract.rest_config import RestEntity, RestSourceConfig
from strata.extract.sql import EntityResult, ExtractError, ExtractSummary, extract_source

__all__ = [
    "EntityResult",
    "ExtractError",
    "ExtractSummary",
    "RestEntity",
    "RestSourceConfig",
    "SourceConfig",
    "SourceNotFoundError",
    "TableSpec",
    "extract_rest_source",
    "extract_source",
    "load_source",
]
