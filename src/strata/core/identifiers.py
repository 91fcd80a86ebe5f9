"""Identifier rules for namespaces, tables and tenants.

These names become directory names in the lake (``tenant=acme``) and SQL identifiers later,
so they are deliberately narrow: lowercase ASCII only, because two tenants differing only by
case would share a directory on case-insensitive file systems (macOS, Windows, some object
store gateways) and that is a tenant-isolation bug, not a cosmetic one.
"""

from __future__ import annotations

import re
from typing import Final

from strata.core.errors import InvalidIdentifierError

NAME_RULE: Final = (
    "must match [a-z][a-z0-9_]{0,62}: lowercase letter first, then lowercase letters, digits or '_'"
)
TENANT_RULE: Final = (
    "must match [a-z0-9][a-z0-9_-]{0,63}: lowercase letters, digits, '_' or '-', "
    "starting with a letter or digit"
)

_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,62}")
_TENANT_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def is_valid_tenant(value: object) -> bool:
    return isinstance(value, str) and _TENANT_RE.fullmatch(value) is not None


def validate_name(value: object, kind: str = "table") -> str:
    """Return ``value`` if it is a valid namespace/table name, else raise naming the rule."""
    if not is_valid_name(value):
        raise InvalidIdentifierError(kind, value, NAME_RULE)
    return value  # type: ignore[return-value]  # narrowed by is_valid_name


def validate_tenant(value: object) -> str:
    """Return the tenant id as a string; non-negative ints are accepted as their decimal form."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**64:
        value = str(value)
    if not is_valid_tenant(value):
        raise InvalidIdentifierError("tenant", value, TENANT_RULE)
    return value  # type: ignore[return-value]
