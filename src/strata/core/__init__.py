"""Shared vocabulary of every Strata package: errors, identifiers, time and logging."""

from strata.core.errors import (
    ConfigError,
    InvalidIdentifierError,
    StrataError,
    Terminal,
    Transient,
)
from strata.core.identifiers import validate_name, validate_tenant

__all__ = [
    "ConfigError",
    "InvalidIdentifierError",
    "StrataError",
    "Terminal",
    "Transient",
    "validate_name",
    "validate_tenant",
]
