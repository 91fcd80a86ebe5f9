"""API keys in the catalog, against a SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import fields

import pytest
import sqlalchemy as sa

from strata.catalog import Catalog, CatalogError, migrate
from strata.catalog import schema as db
from strata.catalog.backends import backend_for
from strata.catalog.config import engine_url
from strata.catalog.keys import ApiKey, ApiKeyRow, parse_token
from strata.core.access import InvalidRoleError, Principal
from strata.core.errors import InvalidIdentifierError

TOKEN_RE = re.compile(r"strata_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


class ManualClock:
    """A clock the test moves by hand (epoch microseconds)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> int:
        return int(self.now.timestamp() * 1_000_000)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(engine_url(url))


def _raw_rows(url: str) -> list[dict[str, object]]:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM api_keys")).mappings().all()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


# -- create / verify / revoke ---------------------------------------------------------------


def test_create_and_verify_round_trip(catalog: Catalog) -> None:
    key, token = catalog.create_key("acme", "viewer", "dashboards")
    match = TOKEN_RE.fullmatch(token)
    assert match is not None, token
    assert match.group(1) == key.key_id
    assert (key.tenant, key.role, key.name) == ("acme", "viewer", "dashboards")
    assert key.created_at.tzinfo is not None
    assert key.last_used_at is None
    assert not key.revoked

    assert catalog.verify_key(token) == Principal(
        tenant="acme", role="viewer", subject=key.key_id, via="api_key"
    )


def test_platform_admin_key_has_no_tenant(catalog: Catalog) -> None:
    key, token = catalog.create_key(None, "platform_admin")
    assert key.tenant is None
    principal = catalog.verify_key(token)
    assert principal is not None
    assert (principal.tenant, principal.role) == (None, "platform_admin")


def test_only_a_hash_of_the_secret_is_stored(catalog: Catalog, catalog_url: str) -> None:
    key, token = catalog.create_key("acme", "service", "etl")
    secret = token.rsplit(f"{key.key_id}_", 1)[1]
    (row,) = _raw_rows(catalog_url)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())
    # What the catalog hands out never carries the hash either.
    assert "secret_hash" not in {f.name for f in fields(ApiKey)}
    listed = catalog.list_keys()
    assert not any(row["secret_hash"] in repr(item) for item in listed)


def test_two_keys_get_different_ids_and_secrets(catalog: Catalog) -> None:
    (a, token_a), (b, token_b) = (catalog.create_key("acme", "viewer") for _ in range(2))
    assert a.key_id != b.key_id
    assert token_a.split("_", 2)[2] != token_b.split("_", 2)[2]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "strata_",
        "strata__",
        "strata_0123456789abcdef",
        "strata_0123456789abcdef_",
        "strata_0123456789abcdef_short",
        "strata_0123456789ABCDEF_" + "a" * 43,  # upper-case key id
        "strata_0123456789abcde_" + "a" * 43,  # key id too short
        "strata_0123456789abcdef_" + "a" * 44,  # secret too long
        "strata_0123456789abcdef_" + "a" * 42 + "!",
        "other_0123456789abcdef_" + "a" * 43,
    ],
)
def test_malformed_tokens_are_refused(catalog: Catalog, token: str) -> None:
    catalog.create_key("acme", "viewer")
    assert catalog.verify_key(token) is None


def test_unknown_key_id_is_refused(catalog: Catalog) -> None:
    _, token = catalog.create_key("acme", "viewer")
    parsed = parse_token(token)
    assert parsed is not None
    key_id, secret = parsed
    other_id = "0" * 16 if key_id != "0" * 16 else "1" * 16
    assert catalog.verify_key(f"strata_{other_id}_{secret}") is None


def test_tampered_secret_is_refused(catalog: Catalog) -> None:
    _, token = catalog.create_key("acme", "viewer")
    last = token[-1]
    tampered = token[:-1] + ("A" if last != "A" else "B")
    assert catalog.verify_key(tampered) is None
    assert catalog.verify_key(token) is not None


def test_secret_of_one_key_does_not_open_another(catalog: Catalog) -> None:
    a, _ = catalog.create_key("acme", "viewer")
    _, token_b = catalog.create_key("globex", "tenant_admin")
    secret_b = token_b.split("_", 2)[2]
    assert catalog.verify_key(f"strata_{a.key_id}_{secret_b}") is None


def test_revoked_key_is_refused(catalog: Catalog) -> None:
    key, token = catalog.create_key("acme", "tenant_admin")
    other, other_token = catalog.create_key("acme", "viewer")
    assert catalog.revoke_key(key.key_id) is True
    assert catalog.verify_key(token) is None
    assert catalog.verify_key(other_token) is not None
    assert catalog.revoke_key(key.key_id) is False  # already revoked
    revoked = catalog.get_key(key.key_id)
    assert revoked is not None
    assert revoked.revoked
    still = catalog.get_key(other.key_id)
    assert still is not None
    assert not still.revoked


def test_revoking_unknown_or_malformed_ids(catalog: Catalog) -> None:
    assert catalog.revoke_key("0123456789abcdef") is False
    assert catalog.revoke_key("not a key id") is False
    assert catalog.get_key("0123456789abcdef") is None
    assert catalog.get_key("'; drop table api_keys; --") is None


def test_last_used_is_written_at_most_once_a_minute(catalog_url: str) -> None:
    clock = ManualClock(T0)
    with Catalog.open(catalog_url, clock=clock) as catalog:
        key, token = catalog.create_key("acme", "viewer")

        def last_used() -> dt.datetime | None:
            found = catalog.get_key(key.key_id)
            assert found is not None
            return found.last_used_at

        clock.now = T0 + dt.timedelta(seconds=5)
        assert catalog.verify_key(token) is not None
        assert last_used() == T0 + dt.timedelta(seconds=5)

        clock.now = T0 + dt.timedelta(seconds=50)
        assert catalog.verify_key(token) is not None
        assert last_used() == T0 + dt.timedelta(seconds=5)  # within the minute: no write

        clock.now = T0 + dt.timedelta(seconds=70)
        assert catalog.verify_key(token) is not None
        assert last_used() == T0 + dt.timedelta(seconds=70)

        # A refused attempt is not a use.
        clock.now = T0 + dt.timedelta(hours=1)
        assert catalog.verify_key(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
        assert last_used() == T0 + dt.timedelta(seconds=70)


# -- validation -------------------------------------------------------------------------------


def test_unknown_role_is_refused_naming_it(catalog: Catalog) -> None:
    with pytest.raises(InvalidRoleError, match="'superuser'") as info:
        catalog.create_key("acme", "superuser")
    assert "viewer, tenant_admin, platform_admin, service, ingest" in str(info.value)
    assert catalog.list_keys() == []


def test_invalid_tenant_is_refused(catalog: Catalog) -> None:
    with pytest.raises(InvalidIdentifierError, match="'Acme Corp'"):
        catalog.create_key("Acme Corp", "viewer")
    assert catalog.list_keys() == []


@pytest.mark.parametrize("role", ["viewer", "tenant_admin", "service"])
def test_tenant_roles_need_a_tenant(catalog: Catalog, role: str) -> None:
    with pytest.raises(CatalogError, match=f"a {role} key belongs to one tenant"):
        catalog.create_key(None, role)


def test_platform_admin_takes_no_tenant(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="takes no tenant"):
        catalog.create_key("acme", "platform_admin")


# -- ingest keys (the HTTP collector's) ---------------------------------------------------------


def test_ingest_key_is_bound_to_a_namespace_and_maybe_a_tenant(catalog: Catalog) -> None:
    any_tenant, token = catalog.create_key(None, "ingest", "clicks", namespace="events")
    assert (any_tenant.tenant, any_tenant.role, any_tenant.namespace) == (None, "ingest", "events")
    assert catalog.verify_key(token) == Principal(
        tenant=None, role="ingest", subject=any_tenant.key_id, via="api_key", namespace="events"
    )
    one_tenant, token = catalog.create_key("acme", "ingest", namespace="events")
    principal = catalog.verify_key(token)
    assert principal is not None
    assert (principal.tenant, principal.namespace) == ("acme", "events")
    listed = {k.key_id: k.namespace for k in catalog.list_keys()}
    assert listed == {any_tenant.key_id: "events", one_tenant.key_id: "events"}
    assert [k.key_id for k in catalog.list_keys("acme")] == [one_tenant.key_id]


def test_ingest_key_needs_a_valid_namespace(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="give its namespace"):
        catalog.create_key("acme", "ingest")
    with pytest.raises(InvalidIdentifierError, match="invalid namespace 'Events'"):
        catalog.create_key(None, "ingest", namespace="Events")
    assert catalog.list_keys() == []


@pytest.mark.parametrize(
    ("tenant", "role"),
    [("acme", "viewer"), ("acme", "tenant_admin"), ("acme", "service"), (None, "platform_admin")],
)
def test_other_keys_take_no_namespace(catalog: Catalog, tenant: str | None, role: str) -> None:
    with pytest.raises(CatalogError, match="takes no namespace"):
        catalog.create_key(tenant, role, namespace="events")
    key, token = catalog.create_key(tenant, role)
    assert key.namespace is None
    principal = catalog.verify_key(token)
    assert principal is not None
    assert principal.namespace is None


def test_the_database_enforces_the_namespace_scope(catalog: Catalog, catalog_url: str) -> None:
    table = db.table_of(ApiKeyRow)
    base = {"secret_hash": "0" * 64, "created_at": T0, "name": None}
    bad_rows = [
        {"key_id": "a" * 16, "tenant": None, "role": "ingest", "namespace": None},
        {"key_id": "b" * 16, "tenant": "acme", "role": "viewer", "namespace": "events"},
        {"key_id": "c" * 16, "tenant": None, "role": "service", "namespace": "events"},
    ]
    engine = _engine(catalog_url)
    try:
        for row in bad_rows:
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(sa.insert(table).values(**base, **row))
        with engine.begin() as connection:  # the shape an ingest key has: accepted
            connection.execute(
                sa.insert(table).values(
                    **base, key_id="d" * 16, tenant=None, role="ingest", namespace="events"
                )
            )
    finally:
        engine.dispose()
    assert [k.key_id for k in catalog.list_keys()] == ["d" * 16]


def test_upgrade_from_0005_keeps_keys_and_downgrade_drops_ingest_keys(catalog_url: str) -> None:
    url = engine_url(catalog_url)
    engine = backend_for(url).create_engine(url)
    try:
        with engine.begin() as connection:
            migrate.upgrade(connection, "0005")
            connection.execute(
                sa.text(
                    "INSERT INTO api_keys (key_id, tenant, role, secret_hash, created_at) "
                    "VALUES (:key_id, 'acme', 'service', :hash, :at)"
                ),
                {"key_id": "e" * 16, "hash": "0" * 64, "at": T0},
            )
    finally:
        engine.dispose()
    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision()
        (old,) = catalog.list_keys()
        assert (old.key_id, old.role, old.tenant) == ("e" * 16, "service", "acme")
        assert old.namespace is None
        catalog.create_key(None, "ingest", namespace="events")
    engine = _engine(catalog_url)
    try:
        with engine.begin() as connection:
            migrate.downgrade(connection, "0005")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("api_keys")}
        assert "namespace" not in columns
        with engine.connect() as connection:
            left = connection.execute(sa.text("SELECT key_id FROM api_keys")).scalars().all()
        assert left == ["e" * 16]
    finally:
        engine.dispose()
    with Catalog.open(catalog_url) as catalog:  # and back to head
        assert [k.key_id for k in catalog.list_keys()] == ["e" * 16]


def test_overlong_name_is_refused(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="API key name"):
        catalog.create_key("acme", "viewer", "x" * 201)


def test_the_database_enforces_role_and_tenant_scope(catalog: Catalog, catalog_url: str) -> None:
    """Even a writer that skips ``create_key`` cannot store an unscoped or unknown key."""
    table = db.table_of(ApiKeyRow)
    base = {"secret_hash": "0" * 64, "created_at": T0, "name": None}
    bad_rows = [
        {"key_id": "a" * 16, "tenant": "acme", "role": "platform_admin"},
        {"key_id": "b" * 16, "tenant": None, "role": "viewer"},
        {"key_id": "c" * 16, "tenant": "acme", "role": "root"},
    ]
    engine = _engine(catalog_url)
    try:
        for row in bad_rows:
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(sa.insert(table).values(**base, **row))
    finally:
        engine.dispose()
    assert catalog.list_keys() == []


# -- listing ----------------------------------------------------------------------------------


def test_list_keys_oldest_first_and_by_tenant(catalog_url: str) -> None:
    clock = ManualClock(T0)
    with Catalog.open(catalog_url, clock=clock) as catalog:
        made = []
        for tenant, role in [("acme", "viewer"), ("globex", "service"), (None, "platform_admin")]:
            clock.now += dt.timedelta(seconds=1)
            made.append(catalog.create_key(tenant, role)[0])
        clock.now += dt.timedelta(seconds=1)
        catalog.revoke_key(made[0].key_id)

        listed = catalog.list_keys()
        assert [k.key_id for k in listed] == [k.key_id for k in made]
        assert listed[0].revoked_at == T0 + dt.timedelta(seconds=4)
        assert [k.key_id for k in catalog.list_keys("globex")] == [made[1].key_id]
        assert catalog.list_keys("initech") == []
        with pytest.raises(InvalidIdentifierError):
            catalog.list_keys("Not A Tenant")


# -- schema and migrations ------------------------------------------------------------------


def test_constraint_names_follow_the_models_naming_convention(
    catalog: Catalog, catalog_url: str
) -> None:
    table = db.table_of(ApiKeyRow)
    expected = {str(c.name) for c in table.constraints} | {str(i.name) for i in table.indexes}
    engine = _engine(catalog_url)
    try:
        inspector = sa.inspect(engine)
        names = {str(inspector.get_pk_constraint("api_keys")["name"])}
        names.update(str(c["name"]) for c in inspector.get_check_constraints("api_keys"))
        names.update(str(i["name"]) for i in inspector.get_indexes("api_keys"))
    finally:
        engine.dispose()
    assert names == expected
    assert expected == {
        "pk_api_keys",
        "ck_api_keys_role",
        "ck_api_keys_tenant_scope",
        "ck_api_keys_namespace_scope",
        "ix_api_keys_tenant",
    }


def test_upgrade_from_0001_keeps_existing_data(catalog_url: str) -> None:
    url = engine_url(catalog_url)
    engine = backend_for(url).create_engine(url)  # as the catalog does: makes the folder
    try:
        with engine.begin() as connection:
            migrate.upgrade(connection, "0001")
            assert migrate.current_revision(connection) == "0001"
            connection.execute(
                sa.insert(db.table_of(db.Run)).values(
                    id="run-before-keys",
                    kind="transform",
                    status="succeeded",
                    started_at=T0,
                    finished_at=T0 + dt.timedelta(minutes=1),
                    params={"select": "silver"},
                )
            )
        assert "api_keys" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()

    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision()
        run = catalog.get_run("run-before-keys")
        assert (run.status, run.params, run.started_at) == ("succeeded", {"select": "silver"}, T0)
        assert catalog.list_keys() == []
        _, token = catalog.create_key("acme", "viewer")
        assert catalog.verify_key(token) is not None


def test_downgrade_to_0001_drops_keys_and_keeps_runs(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        run_id = catalog.start_run("ingest")
        catalog.create_key("acme", "viewer")
    engine = _engine(catalog_url)
    try:
        with engine.begin() as connection:
            migrate.downgrade(connection, "0001")
        assert "api_keys" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with Catalog.open(catalog_url) as catalog:  # back to head
        assert catalog.schema_revision() == migrate.head_revision()
        assert catalog.get_run(run_id).kind == "ingest"
        assert catalog.list_keys() == []
