"""``strata keys create/list/revoke`` through the real command tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from strata.catalog import Catalog, CatalogConfig
from strata.cli import app
from strata.transform.project import validate_project
from strata.transform.scaffold import init_project

TOKEN_RE = re.compile(r"^strata_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$", re.MULTILINE)


class Keys:
    """Runs ``strata keys ...`` with a clean environment and a given catalog URL (or none)."""

    def __init__(self, catalog_url: str | None) -> None:
        self.runner = CliRunner()
        self.env = {"STRATA_CATALOG_URL": catalog_url, "STRATA_LOG_LEVEL": None, "COLUMNS": "200"}

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, ["keys", *args], env=self.env)

    def create(self, *args: str) -> tuple[str, str]:
        result = self("create", *args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        match = TOKEN_RE.search(result.stdout)
        assert match is not None, result.stdout
        assert match.group(1) in result.stdout.replace(match.group(0), "")  # id printed too
        return match.group(1), match.group(0)


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys' / 'catalog.db'}"


@pytest.fixture
def keys(catalog_url: str) -> Keys:
    return Keys(catalog_url)


def verify(catalog_url: str, token: str) -> object:
    with Catalog.open(catalog_url) as catalog:
        return catalog.verify_key(token)


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_create_list_revoke(keys: Keys, catalog_url: str) -> None:
    key_id, token = keys.create("--tenant", "acme", "--role", "viewer", "--name", "grafana")
    principal = verify(catalog_url, token)
    assert principal is not None
    assert getattr(principal, "tenant", None) == "acme"

    admin_id, _ = keys.create("--role", "platform_admin", "--name", "ops [on call]")

    listed = keys("list")
    assert listed.exit_code == 0, listed.stderr
    for text in (key_id, admin_id, "acme", "viewer", "platform_admin", "grafana", "ops [on call]"):
        assert text in listed.stdout
    assert "strata_" not in listed.stdout  # no token, no secret
    assert listed.stdout.count("active") == 2

    only_acme = keys("list", "--tenant", "acme")
    assert key_id in only_acme.stdout
    assert admin_id not in only_acme.stdout

    revoked = keys("revoke", key_id)
    assert revoked.exit_code == 0, revoked.stderr
    assert f"Revoked API key {key_id}" in revoked.stdout
    assert verify(catalog_url, token) is None
    after = keys("list")
    assert after.stdout.count("revoked") == 1
    assert after.stdout.count("active") == 1

    again = keys("revoke", key_id)
    assert again.exit_code == 0
    assert "already revoked" in again.stdout


def test_token_is_printed_once_on_a_line_of_its_own(keys: Keys) -> None:
    result = keys("create", "--tenant", "acme", "--role", "service")
    assert result.exit_code == 0
    assert len(TOKEN_RE.findall(result.stdout)) == 1
    assert "shown once" in result.stdout


def test_ingest_keys_are_created_and_listed_with_their_namespace(
    keys: Keys, catalog_url: str
) -> None:
    result = keys("create", "--role", "ingest", "--namespace", "events", "--name", "web")
    assert result.exit_code == 0, result.stderr
    assert "(ingest, namespace events, each record's tenant)" in result.stdout
    match = TOKEN_RE.search(result.stdout)
    assert match is not None
    any_tenant = match.group(1)
    principal = verify(catalog_url, match.group(0))
    assert getattr(principal, "namespace", None) == "events"
    assert getattr(principal, "tenant", "unset") is None

    acme_id, token = keys.create("--role", "ingest", "--namespace", "events", "--tenant", "acme")
    principal = verify(catalog_url, token)
    assert (getattr(principal, "tenant", None), getattr(principal, "namespace", None)) == (
        "acme",
        "events",
    )
    viewer_id, _ = keys.create("--role", "viewer", "--tenant", "acme")

    listed = keys("list").stdout
    assert "namespace" in listed  # the column
    lines = {line.split()[1]: line for line in listed.splitlines() if line.count("│") > 3}
    assert "events" in lines[any_tenant]
    assert "(per record)" in lines[any_tenant]
    assert "events" in lines[acme_id]
    assert "acme" in lines[acme_id]
    assert "events" not in lines[viewer_id]


def test_ingest_key_without_a_namespace_is_refused(keys: Keys) -> None:
    assert_one_line_error(keys("create", "--role", "ingest"), "give its namespace")


def test_query_key_with_a_namespace_is_refused(keys: Keys) -> None:
    result = keys("create", "--role", "viewer", "--tenant", "acme", "--namespace", "events")
    assert_one_line_error(result, "takes no namespace")


def test_list_of_an_empty_catalog(keys: Keys) -> None:
    result = keys("list", "--tenant", "acme")
    assert result.exit_code == 0
    assert "no API keys for tenant acme" in result.stdout


def test_platform_admin_with_a_tenant_is_refused(keys: Keys) -> None:
    result = keys("create", "--tenant", "acme", "--role", "platform_admin")
    assert_one_line_error(result, "platform_admin", "takes no tenant")


def test_tenant_role_without_a_tenant_is_refused(keys: Keys) -> None:
    assert_one_line_error(keys("create", "--role", "tenant_admin"), "belongs to one tenant")


def test_unknown_role_is_refused_naming_it(keys: Keys, catalog_url: str) -> None:
    result = keys("create", "--tenant", "acme", "--role", "owner")
    assert_one_line_error(
        result, "'owner'", "viewer, tenant_admin, platform_admin, service, ingest"
    )
    assert not Path(catalog_url.removeprefix("sqlite:///")).exists()  # nothing created


def test_invalid_tenant_is_refused(keys: Keys) -> None:
    assert_one_line_error(keys("create", "--tenant", "Acme", "--role", "viewer"), "'Acme'")


def test_unknown_key_id_is_refused(keys: Keys) -> None:
    keys.create("--tenant", "acme", "--role", "viewer")
    assert_one_line_error(keys("revoke", "0123456789abcdef"), "'0123456789abcdef'")
    assert_one_line_error(keys("revoke", "nonsense"), "no API key")


def test_the_project_catalog_is_used_and_broken_models_do_not_block(tmp_path: Path) -> None:
    root = init_project(tmp_path / "proj", "proj")
    # A broken model must not stand between an operator and revoking a key.
    (root / "models" / "gold" / "broken.sql").write_text("select 1 as n")
    (root / "models" / "gold" / "broken.yml").write_text("materialized: [nope")
    assert validate_project(root) != []
    keys = Keys(None)
    key_id, token = keys.create("--project", str(root), "--tenant", "acme", "--role", "viewer")
    project_catalog = CatalogConfig.for_project(root).url
    assert verify(project_catalog, token) is not None
    assert key_id in keys("list", "--project", str(root)).stdout
    assert keys("revoke", key_id, "--project", str(root)).exit_code == 0
    assert verify(project_catalog, token) is None


def test_catalog_url_from_the_environment_wins_over_the_project(
    tmp_path: Path, keys: Keys, catalog_url: str
) -> None:
    root = init_project(tmp_path / "proj", "proj")
    _, token = keys.create("--project", str(root), "--tenant", "acme", "--role", "viewer")
    assert verify(catalog_url, token) is not None
    assert not (root / ".strata" / "catalog.db").exists()


def test_no_project_and_no_catalog_url_is_refused(tmp_path: Path) -> None:
    result = Keys(None)("list", "--project", str(tmp_path))
    assert_one_line_error(result, "strata.toml", "STRATA_CATALOG_URL")


def test_every_command_has_help(keys: Keys) -> None:
    top = keys("--help")
    assert top.exit_code == 0
    for command in ("create", "revoke", "list"):
        assert command in top.stdout
        sub = keys(command, "--help")
        assert sub.exit_code == 0
        assert "--project" in sub.stdout
    assert "platform_admin" in keys("create", "--help").stdout
