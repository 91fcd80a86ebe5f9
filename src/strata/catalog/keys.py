"""API keys of the query API, stored hashed in the catalog.

A key is shown once, when created, as ``strata_<key_id>_<secret>``:

    key_id   16 lowercase hex characters, random; public (logs, ``strata keys list``)
    secret   32 random bytes, urlsafe base64 without padding (43 characters)

Only the SHA-256 of the secret is stored. The ``api_keys`` model lives here, next to the
methods that use it, and registers on the same metadata as ``schema.py``; revision
``0002_api_keys`` creates its table and ``0006_service_keys`` adds the ``namespace`` of
``ingest`` keys (the HTTP collector's), whose tenant is optional.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy import CheckConstraint, Index, String, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from strata.catalog import schema as db
from strata.catalog.base import CatalogBase, bounded
from strata.catalog.errors import CatalogError, CatalogUnavailableError
from strata.catalog.schema import NAME_LENGTH, UtcDateTime
from strata.core.access import (
    INGEST,
    PLATFORM_ADMIN,
    ROLES,
    Principal,
    Role,
    is_namespace_scoped,
    is_tenant_scoped,
    parse_role,
)
from strata.core.identifiers import validate_name, validate_tenant
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

TOKEN_PREFIX: Final = "strata_"  # noqa: S105 - a public prefix, not a secret
KEY_ID_LENGTH: Final = 16
SECRET_BYTES: Final = 32
# How stale ``last_used_at`` may get: one write per key per minute at most, not per request.
LAST_USED_GRANULARITY: Final = dt.timedelta(minutes=1)

_KEY_ID_RE: Final = re.compile(rf"[0-9a-f]{{{KEY_ID_LENGTH}}}")
# 32 bytes in urlsafe base64 without padding: 43 characters.
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_TENANT_LENGTH: Final = 64
_NAMESPACE_LENGTH: Final = 63
_ROLE_LENGTH: Final = 32
_HASH_LENGTH: Final = 64


class ApiKeyRow(db.Base):
    """One API key: who it acts as, and the hash of its secret (never the secret)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(db._in_check("role", ROLES), name="role"),
        # A platform admin key acts across tenants; an ingest key belongs to one tenant or
        # takes each record's; every other key belongs to one tenant.
        CheckConstraint(
            f"(role = '{PLATFORM_ADMIN}' AND tenant IS NULL)"
            f" OR role = '{INGEST}'"
            f" OR (role NOT IN ('{PLATFORM_ADMIN}', '{INGEST}') AND tenant IS NOT NULL)",
            name="tenant_scope",
        ),
        # Only an ingest key has a namespace, and it always has one.
        CheckConstraint(
            f"(role = '{INGEST}' AND namespace IS NOT NULL)"
            f" OR (role <> '{INGEST}' AND namespace IS NULL)",
            name="namespace_scope",
        ),
        Index(None, "tenant"),
    )

    key_id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(_TENANT_LENGTH))
    role: Mapped[str] = mapped_column(String(_ROLE_LENGTH))
    namespace: Mapped[str | None] = mapped_column(String(_NAMESPACE_LENGTH))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    secret_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as listed: everything but its secret and the secret's hash."""

    key_id: str
    tenant: str | None
    role: Role
    name: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    namespace: str | None = None  # ingest keys only

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKeyNotFoundError(CatalogError, LookupError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no API key with id {key_id!r} in the catalog")


class ApiKeyStore(CatalogBase):
    def create_key(
        self,
        tenant: str | None,
        role: str,
        name: str | None = None,
        *,
        namespace: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key acting as ``role`` for ``tenant``; returns it and its token.

        The token is the only copy of the secret: show it once, it cannot be read back.
        ``platform_admin`` keys take no tenant; ``ingest`` keys need a ``namespace`` and
        take a tenant or none; every other role needs exactly one tenant and no namespace.
        """
        checked_role = parse_role(role)
        checked_tenant = _key_tenant(tenant, checked_role)
        checked_namespace = _key_namespace(namespace, checked_role)
        if name is not None:
            bounded(name, NAME_LENGTH, "API key name")
        key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        row = ApiKeyRow(
            key_id=key_id,
            tenant=checked_tenant,
            role=checked_role,
            namespace=checked_namespace,
            name=name,
            secret_hash=_hash_secret(secret),
            created_at=self._now(),
        )
        with self._session(write=True) as session:
            session.add(row)
            session.flush()
            key = _api_key(row)
        log.info(
            "api key created",
            extra=fields(
                key_id=key_id, tenant=checked_tenant, role=checked_role, namespace=checked_namespace
            ),
        )
        return key, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def verify_key(self, token: str) -> Principal | None:
        """The principal a token acts as; ``None`` if malformed, unknown, wrong or revoked.

        One primary-key read per call; ``last_used_at`` is written at most once a minute
        per key, and a failure to write it (a busy database) does not fail the caller.
        """
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._session(write=False) as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                return None
            stored_hash, revoked_at, last_used_at = (
                row.secret_hash,
                row.revoked_at,
                row.last_used_at,
            )
            tenant, role, namespace = row.tenant, row.role, row.namespace
        if not hmac.compare_digest(stored_hash, _hash_secret(secret)):
            return None
        if revoked_at is not None:
            return None
        now = self._now()
        if last_used_at is None or now - last_used_at >= LAST_USED_GRANULARITY:
            self._touch_key(key_id, now)
        return Principal(
            tenant=tenant,
            role=parse_role(role),
            subject=key_id,
            via="api_key",
            namespace=namespace,
        )

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key for good; ``False`` if there is no such key or it was already revoked."""
        if _KEY_ID_RE.fullmatch(key_id) is None:
            return False
        with self._session(write=True) as session:
            result = session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
            revoked = int(getattr(result, "rowcount", 0)) > 0
        if revoked:
            log.info("api key revoked", extra=fields(key_id=key_id))
        return revoked

    def get_key(self, key_id: str) -> ApiKey | None:
        """One key by its id (revoked or not), without its secret."""
        if _KEY_ID_RE.fullmatch(key_id) is None:
            return None
        with self._session(write=False) as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else _api_key(row)

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (revoked ones too), oldest first; only ``tenant``'s if given.

        Platform admin keys have no tenant, so a tenant filter never lists them.
        """
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)
        if tenant is not None:
            query = query.where(ApiKeyRow.tenant == validate_tenant(tenant))
        with self._session(write=False) as session:
            return [_api_key(row) for row in session.scalars(query)]

    def _touch_key(self, key_id: str, now: dt.datetime) -> None:
        # Conditional, so concurrent requests in the same minute do not all rewrite it.
        stale = now - LAST_USED_GRANULARITY
        try:
            with self._session(write=True) as session:
                session.execute(
                    update(ApiKeyRow)
                    .where(
                        ApiKeyRow.key_id == key_id,
                        or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at <= stale),
                    )
                    .values(last_used_at=now)
                )
        except CatalogUnavailableError as exc:
            log.warning(
                "api key last use not recorded", extra=fields(key_id=key_id, error=str(exc))
            )


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed ``strata_<key_id>_<secret>`` token, else ``None``.

    The key id never contains ``_``, so the first ``_`` after the prefix ends it; the secret
    (urlsafe base64) may contain more.
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or _KEY_ID_RE.fullmatch(key_id) is None or _SECRET_RE.fullmatch(secret) is None:
        return None
    return key_id, secret


def _hash_secret(secret: str) -> str:
    # A plain SHA-256 is enough here, unlike for passwords: the secret is 256 bits from
    # the OS's CSPRNG, so there is no dictionary to try and brute force is out of reach
    # whatever the hash costs. A slow KDF (bcrypt, argon2) only protects low-entropy
    # secrets, and would add its deliberate delay to every API request.
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _key_tenant(tenant: str | None, role: Role) -> str | None:
    if role == INGEST:  # one tenant, or none: each record then names its own
        return None if tenant is None else validate_tenant(tenant)
    if not is_tenant_scoped(role):
        if tenant is not None:
            raise CatalogError(
                f"a {role} key acts across tenants and takes no tenant (got {tenant!r})"
            )
        return None
    if tenant is None:
        raise CatalogError(f"a {role} key belongs to one tenant: give its tenant")
    return validate_tenant(tenant)


def _key_namespace(namespace: str | None, role: Role) -> str | None:
    if not is_namespace_scoped(role):
        if namespace is not None:
            raise CatalogError(
                f"a {role} key takes no namespace (got {namespace!r}); "
                f"only {INGEST} keys land records in one"
            )
        return None
    if namespace is None:
        raise CatalogError(f"an {role} key lands records in one namespace: give its namespace")
    return validate_name(namespace, "namespace")


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        tenant=row.tenant,
        role=parse_role(row.role),
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        namespace=row.namespace,
    )
