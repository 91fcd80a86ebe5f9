"""Who is calling: roles and the authenticated principal, shared by the catalog and the API.

Pure values with no web framework in sight: the catalog builds a ``Principal`` from an API
key, ``strata.api.auth`` from an API key or a JWT, and the HTTP layer only wraps them.

    viewer          reads its own tenant's data
    tenant_admin    manages its own tenant
    service         a machine client of one tenant
    platform_admin  operates the platform; acts for any tenant, or across all of them
    ingest          a machine client that only lands records in one namespace (the HTTP
                    collector), for one tenant or, without one, for the tenant each
                    record names; it reads nothing
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from strata.core.errors import StrataError, Terminal
from strata.core.identifiers import validate_name, validate_tenant

Role = Literal["viewer", "tenant_admin", "platform_admin", "service", "ingest"]
Via = Literal["api_key", "jwt"]

ROLES: Final[tuple[Role, ...]] = get_args(Role)
VIAS: Final[tuple[Via, ...]] = get_args(Via)
PLATFORM_ADMIN: Final[Role] = "platform_admin"
INGEST: Final[Role] = "ingest"


class InvalidRoleError(Terminal, ValueError):
    """A role name that is not one of ``ROLES``."""

    def __init__(self, value: object) -> None:
        self.value = value
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        super().__init__(f"unknown role {shown}: must be one of {', '.join(ROLES)}")


class PrincipalError(StrataError, ValueError):
    """A principal whose role and tenant do not fit together (a bug in the caller)."""


def parse_role(value: object) -> Role:
    """``value`` as a ``Role``, else ``InvalidRoleError`` naming the bad value."""
    if isinstance(value, str) and value in ROLES:
        return value
    raise InvalidRoleError(value)


def is_tenant_scoped(role: Role) -> bool:
    """Whether the role belongs to exactly one tenant: all but ``platform_admin`` (acts
    across tenants) and ``ingest`` (one tenant, or the tenant each record names)."""
    return role not in (PLATFORM_ADMIN, INGEST)


def is_namespace_scoped(role: Role) -> bool:
    """Only ``ingest`` principals are bound to a namespace, and always to exactly one."""
    return role == INGEST


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``tenant`` is required for every role but ``platform_admin``; a platform admin usually
    has none (it acts across tenants) and may carry its home tenant, which grants nothing
    extra. ``subject`` names the caller for logs: the key id of an API key, the ``sub``
    claim of a JWT. ``namespace`` is set for ``ingest`` principals only: the one namespace
    whose tables they may land records in.
    """

    tenant: str | None
    role: Role
    subject: str
    via: Via
    namespace: str | None = None

    def __post_init__(self) -> None:
        parse_role(self.role)
        if self.via not in VIAS:
            raise PrincipalError(f"principal via must be one of {VIAS}, not {self.via!r}")
        if not self.subject:
            raise PrincipalError("a principal needs a non-empty subject")
        if self.tenant is not None:
            validate_tenant(self.tenant)
        elif is_tenant_scoped(self.role):
            raise PrincipalError(f"a {self.role} principal needs a tenant")
        if is_namespace_scoped(self.role):
            if self.namespace is None:
                raise PrincipalError(f"a {self.role} principal needs a namespace")
            validate_name(self.namespace, "namespace")
        elif self.namespace is not None:
            raise PrincipalError(f"a {self.role} principal takes no namespace")

    @property
    def is_platform_admin(self) -> bool:
        return self.role == PLATFORM_ADMIN

    @property
    def is_ingest(self) -> bool:
        return self.role == INGEST
