"""Who may call the query API: API keys and JWT bearer tokens, turned into a ``Principal``.

No web framework here; the HTTP layer maps ``AuthError`` to 401 and ``ForbiddenError``
to 403, and calls ``authenticate``, ``require_tenant`` and ``require_role`` per request.

    principal = authenticate(request.headers.get("authorization"), catalog, jwt_config)
    tenant = require_tenant(principal, query_params.get("tenant"))
    require_role(principal, "tenant_admin", "platform_admin")

A bearer token starting with ``strata_`` is an API key checked against the catalog; any
other is a JWT, signed with a shared secret (HS256) or an RSA key pair (RS256; the API
holds the public key).

``authenticate`` also keeps the two sides of the server apart: an ``ingest`` key (the HTTP
collector's, bound to a namespace) is refused everywhere but the collector, and the
collector refuses every other principal (``purpose``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from strata.catalog.keys import TOKEN_PREFIX
from strata.core.access import (
    INGEST,
    ROLES,
    InvalidRoleError,
    Principal,
    Role,
    is_tenant_scoped,
    parse_role,
)
from strata.core.errors import ConfigError, InvalidIdentifierError, Terminal
from strata.core.identifiers import validate_tenant

Purpose = Literal["query", "ingest"]
"""What a request is for: reading (every route but the collector's) or landing records."""

MIN_SECRET_BYTES: Final = 32  # RFC 7518 3.2: an HS256 key has at least 256 bits
MIN_RSA_BITS: Final = 2048


class AuthError(Terminal):
    """The caller is not authenticated (answer 401); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not authenticated: {reason}")


class ForbiddenError(Terminal):
    """The caller is authenticated but may not do this (answer 403)."""


class KeyVerifier(Protocol):
    """What ``authenticate`` needs of the catalog (``Catalog`` has it)."""

    def verify_key(self, token: str) -> Principal | None: ...


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """How to verify JWTs: exactly one of a shared ``secret`` (HS256) or an RSA
    ``public_key`` in PEM (RS256).

    Only that one algorithm is accepted, so a token signed ``alg=none``, or with HS256
    using the public key as the HMAC secret (key confusion), is refused. The tenant and
    role come from the ``tenant_claim`` and ``role_claim`` claims; ``sub`` names the
    caller. Tokens must carry ``exp``; ``audience`` and ``issuer``, when set, must match.
    ``leeway_s`` allows for clock skew between the issuer and this server.
    """

    secret: str | None = field(default=None, repr=False)
    public_key: str | None = field(default=None, repr=False)
    tenant_claim: str = "company_id"
    role_claim: str = "role"
    audience: str | None = None
    issuer: str | None = None
    leeway_s: float = 30.0
    _key: str | RSAPublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.public_key is None):
            raise ConfigError(
                "JWT config needs exactly one of a shared secret (HS256) "
                "or an RSA public key (RS256)"
            )
        if self.secret is not None:
            if len(self.secret.encode("utf-8")) < MIN_SECRET_BYTES:
                raise ConfigError(f"JWT secret must be at least {MIN_SECRET_BYTES} bytes long")
            key: str | RSAPublicKey = self.secret
        else:
            key = _rsa_public_key(str(self.public_key))
        if not self.tenant_claim or not self.role_claim:
            raise ConfigError("JWT tenant_claim and role_claim must be non-empty claim names")
        if self.leeway_s < 0:
            raise ConfigError(f"JWT leeway must be >= 0 seconds, got {self.leeway_s}")
        object.__setattr__(self, "_key", key)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The one algorithm tokens may use: HS256 with a secret, RS256 with a public key."""
        return ("HS256",) if self.secret is not None else ("RS256",)


def _rsa_public_key(pem: str) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"JWT public key is not a PEM public key: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"JWT public key must be an RSA key for RS256, not {type(key).__name__}")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"JWT RSA key must have at least {MIN_RSA_BITS} bits, not {key.key_size}")
    return key


def verify_jwt(token: str, config: JwtConfig) -> Principal:
    """The principal a JWT stands for; ``AuthError`` with the reason if it is not valid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"malformed token: {exc}") from None
    alg = header.get("alg")
    if alg not in config.algorithms:
        raise AuthError(
            f"token algorithm {alg!r} is not allowed (this server accepts "
            f"{', '.join(config.algorithms)})"
        )
    try:
        claims = jwt.decode(
            token,
            config._key,
            algorithms=list(config.algorithms),
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.leeway_s,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("bad token signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token has no {exc.claim!r} claim") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token audience does not match") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token issuer does not match") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("token is not valid yet") from None
    except jwt.InvalidAlgorithmError as exc:
        raise AuthError(f"token algorithm is not allowed: {exc}") from None
    except jwt.DecodeError as exc:
        raise AuthError(f"malformed token: {exc}") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    return _principal_from_claims(claims, config)


def _principal_from_claims(claims: Mapping[str, Any], config: JwtConfig) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("token 'sub' claim must be a non-empty string")
    if config.role_claim not in claims:
        raise AuthError(f"token has no role claim {config.role_claim!r}")
    try:
        role = parse_role(claims[config.role_claim])
    except InvalidRoleError:
        raise AuthError(
            f"unknown role {claims[config.role_claim]!r} in claim {config.role_claim!r} "
            f"(known: {', '.join(ROLES)})"
        ) from None
    if role == INGEST:  # its namespace binding lives with the key, in the catalog
        raise AuthError(f"role {INGEST!r} is given by API keys only, not by tokens")
    raw_tenant = claims.get(config.tenant_claim)
    tenant: str | None = None
    if raw_tenant is None:
        if is_tenant_scoped(role):
            raise AuthError(f"token has no tenant claim {config.tenant_claim!r}")
    else:
        try:
            tenant = validate_tenant(raw_tenant)
        except InvalidIdentifierError as exc:
            raise AuthError(f"tenant claim {config.tenant_claim!r}: {exc}") from None
    return Principal(tenant=tenant, role=role, subject=subject, via="jwt")


def authenticate(
    authorization_header: str | None,
    catalog: KeyVerifier,
    jwt_config: JwtConfig | None,
    *,
    purpose: Purpose = "query",
) -> Principal:
    """The caller of a request, from its ``Authorization: Bearer <token>`` header.

    The token is an API key (``strata_...``, checked in ``catalog``) or a JWT (checked
    with ``jwt_config``; without one, JWTs are refused). ``AuthError`` if the header is
    missing or malformed, or the token unknown, revoked, expired or otherwise invalid.
    ``ForbiddenError`` if the principal may not make requests of this ``purpose``: only
    ``ingest`` keys may land records, and they may do nothing else.
    """
    principal = _authenticate(authorization_header, catalog, jwt_config)
    if purpose == "ingest" and not principal.is_ingest:
        raise ForbiddenError(
            f"{principal.role} {principal.subject!r} may not land records: "
            f"the collector takes {INGEST} keys only (strata keys create --role {INGEST})"
        )
    if purpose != "ingest" and principal.is_ingest:
        raise ForbiddenError(
            f"{INGEST} key {principal.subject!r} may only land records in namespace "
            f"{principal.namespace!r} (POST /api/v1/ingest/{principal.namespace}/<table>)"
        )
    return principal


def _authenticate(
    authorization_header: str | None, catalog: KeyVerifier, jwt_config: JwtConfig | None
) -> Principal:
    if authorization_header is None or not authorization_header.strip():
        raise AuthError("missing Authorization header")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
    if token.startswith(TOKEN_PREFIX):
        principal = catalog.verify_key(token)
        if principal is None:
            raise AuthError("unknown, revoked or malformed API key")
        return principal
    if jwt_config is None:
        raise AuthError("token is not an API key and JWT authentication is not configured")
    return verify_jwt(token, jwt_config)


def require_tenant(principal: Principal, requested_tenant: str | None) -> str | None:
    """The tenant a request acts for; ``None`` means every tenant (platform admins only).

    A platform admin acts for the tenant it names, or for all when it names none. Every
    other principal acts for its own tenant: naming none means its own, naming another
    raises ``ForbiddenError``.
    """
    if principal.is_ingest:  # it reads nothing; authenticate() keeps it away already
        raise ForbiddenError(f"{INGEST} key {principal.subject!r} may not read tenant data")
    requested = None if requested_tenant is None else validate_tenant(requested_tenant)
    if principal.is_platform_admin:
        return requested
    if requested is not None and requested != principal.tenant:
        raise ForbiddenError(
            f"{principal.role} {principal.subject!r} of tenant {principal.tenant!r} "
            f"may not act for tenant {requested!r}"
        )
    return principal.tenant


def require_role(principal: Principal, *roles: Role) -> None:
    """``ForbiddenError`` unless the principal has one of ``roles`` (exactly; no hierarchy)."""
    if not roles:
        raise ValueError("require_role needs at least one role")
    for role in roles:
        parse_role(role)
    if principal.role not in roles:
        raise ForbiddenError(
            f"{principal.role} {principal.subject!r} may not do this: "
            f"needs role {' or '.join(roles)}"
        )
