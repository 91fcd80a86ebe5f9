"""Authentication and authorization of the query API: JWTs, API keys, tenants and roles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from strata.api.auth import (
    AuthError,
    ForbiddenError,
    JwtConfig,
    authenticate,
    require_role,
    require_tenant,
    verify_jwt,
)
from strata.catalog import Catalog
from strata.core.access import InvalidRoleError, Principal, PrincipalError
from strata.core.errors import ConfigError, InvalidIdentifierError

SECRET = "s" * 16 + "0123456789abcdef"  # 32 bytes
OTHER_SECRET = "o" * 32


def _pem_public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rs_config(rsa_key: rsa.RSAPrivateKey) -> JwtConfig:
    return JwtConfig(public_key=_pem_public(rsa_key))


@pytest.fixture
def hs_config() -> JwtConfig:
    return JwtConfig(secret=SECRET)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as opened:
        yield opened


def claims(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sub": "user-17",
        "company_id": "acme",
        "role": "viewer",
        "exp": int(time.time()) + 600,
        "iat": int(time.time()),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def hs_token(secret: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], body: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built by hand, as an attacker would: any header, HMAC with any key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    if hmac_key is None:
        return signing_input + "."
    mac = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def reason(exc_info: pytest.ExceptionInfo[AuthError]) -> str:
    return exc_info.value.reason


# -- JWT: valid tokens ------------------------------------------------------------------------


def test_hs256_token_gives_its_principal(hs_config: JwtConfig) -> None:
    principal = verify_jwt(hs_token(role="tenant_admin"), hs_config)
    assert principal == Principal(tenant="acme", role="tenant_admin", subject="user-17", via="jwt")


def test_rs256_token_gives_its_principal(rsa_key: rsa.RSAPrivateKey, rs_config: JwtConfig) -> None:
    token = jwt.encode(claims(role="service", sub="etl-bot"), rsa_key, algorithm="RS256")
    principal = verify_jwt(token, rs_config)
    assert principal == Principal(tenant="acme", role="service", subject="etl-bot", via="jwt")


def test_platform_admin_token_needs_no_tenant(hs_config: JwtConfig) -> None:
    principal = verify_jwt(hs_token(role="platform_admin", company_id=None), hs_config)
    assert (principal.role, principal.tenant) == ("platform_admin", None)


def test_numeric_tenant_claim_becomes_its_decimal_form(hs_config: JwtConfig) -> None:
    assert verify_jwt(hs_token(company_id=42), hs_config).tenant == "42"


def test_custom_tenant_and_role_claim_names() -> None:
    config = JwtConfig(secret=SECRET, tenant_claim="org", role_claim="strata_role")
    token = hs_token(company_id=None, role=None, org="globex", strata_role="viewer")
    principal = verify_jwt(token, config)
    assert (principal.tenant, principal.role) == ("globex", "viewer")
    # The default claim name means nothing under a custom config.
    with pytest.raises(AuthError, match="'org'"):
        verify_jwt(hs_token(strata_role="viewer"), config)


def test_audience_and_issuer_must_match_when_configured() -> None:
    config = JwtConfig(secret=SECRET, audience="strata-api", issuer="https://idp.example")
    good = hs_token(aud="strata-api", iss="https://idp.example")
    assert verify_jwt(good, config).subject == "user-17"
    with pytest.raises(AuthError, match="audience") as info:
        verify_jwt(hs_token(aud="billing", iss="https://idp.example"), config)
    with pytest.raises(AuthError, match="issuer"):
        verify_jwt(hs_token(aud="strata-api", iss="https://evil.example"), config)
    with pytest.raises(AuthError, match="'aud'"):
        verify_jwt(hs_token(iss="https://idp.example"), config)
    assert "not authenticated" in str(info.value)


def test_small_clock_skew_is_tolerated(hs_config: JwtConfig) -> None:
    assert verify_jwt(hs_token(exp=int(time.time()) - 5), hs_config).tenant == "acme"
    strict = JwtConfig(secret=SECRET, leeway_s=0)
    with pytest.raises(AuthError, match="expired"):
        verify_jwt(hs_token(exp=int(time.time()) - 5), strict)


# -- JWT: refused tokens ----------------------------------------------------------------------


def test_expired_token_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError) as info:
        verify_jwt(hs_token(exp=int(time.time()) - 3600), hs_config)
    assert reason(info) == "token expired"


def test_token_without_expiry_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError, match="'exp'"):
        verify_jwt(hs_token(exp=None), hs_config)


def test_token_without_subject_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError, match="'sub'"):
        verify_jwt(hs_token(sub=None), hs_config)


def test_hs256_signed_with_another_secret_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError) as info:
        verify_jwt(hs_token(OTHER_SECRET), hs_config)
    assert reason(info) == "bad token signature"


def test_rs256_signed_with_another_key_is_refused(
    other_rsa_key: rsa.RSAPrivateKey, rs_config: JwtConfig
) -> None:
    token = jwt.encode(claims(), other_rsa_key, algorithm="RS256")
    with pytest.raises(AuthError) as info:
        verify_jwt(token, rs_config)
    assert reason(info) == "bad token signature"


def test_tampered_claims_are_refused(hs_config: JwtConfig) -> None:
    header, _, signature = hs_token().split(".")
    body = _b64(json.dumps(claims(company_id="globex")).encode())
    with pytest.raises(AuthError, match="signature"):
        verify_jwt(f"{header}.{body}.{signature}", hs_config)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(hs_config: JwtConfig, rs_config: JwtConfig, alg: str) -> None:
    token = forge({"alg": alg, "typ": "JWT"}, claims(role="platform_admin"), None)
    for config in (hs_config, rs_config):
        with pytest.raises(AuthError, match=f"algorithm '{alg}' is not allowed"):
            verify_jwt(token, config)


def test_hs256_signed_with_the_public_key_is_refused(
    rsa_key: rsa.RSAPrivateKey, rs_config: JwtConfig
) -> None:
    """Key confusion: HMAC over the token with the server's public PEM as the secret."""
    pem = _pem_public(rsa_key).encode()
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(role="platform_admin"), pem)
    # The forgery is a well-formed HS256 token whose MAC checks out under that "secret"...
    signing_input, _, mac = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert mac == _b64(expected)
    # ...and it is refused for its algorithm, before any key is used.
    with pytest.raises(AuthError, match=r"algorithm 'HS256' is not allowed .*RS256"):
        verify_jwt(token, rs_config)


def test_rs256_token_is_refused_by_an_hs256_config(
    rsa_key: rsa.RSAPrivateKey, hs_config: JwtConfig
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    with pytest.raises(AuthError, match="algorithm 'RS256' is not allowed"):
        verify_jwt(token, hs_config)


def test_missing_tenant_claim_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError) as info:
        verify_jwt(hs_token(company_id=None, role="tenant_admin"), hs_config)
    assert reason(info) == "token has no tenant claim 'company_id'"


def test_invalid_tenant_claim_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError, match=r"'company_id'.*'Acme Corp'"):
        verify_jwt(hs_token(company_id="Acme Corp"), hs_config)


@pytest.mark.parametrize("role", ["admin", "VIEWER", "", 3, ["viewer"]])
def test_unknown_role_is_refused(hs_config: JwtConfig, role: object) -> None:
    with pytest.raises(AuthError, match="unknown role"):
        verify_jwt(hs_token(role=role), hs_config)


def test_missing_role_claim_is_refused(hs_config: JwtConfig) -> None:
    with pytest.raises(AuthError, match="no role claim 'role'"):
        verify_jwt(hs_token(role=None), hs_config)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "...."])
def test_malformed_jwt_is_refused(hs_config: JwtConfig, token: str) -> None:
    with pytest.raises(AuthError, match="malformed token"):
        verify_jwt(token, hs_config)


# -- JWT config -------------------------------------------------------------------------------


def test_config_derives_the_single_algorithm(hs_config: JwtConfig, rs_config: JwtConfig) -> None:
    assert hs_config.algorithms == ("HS256",)
    assert rs_config.algorithms == ("RS256",)
    assert SECRET not in repr(hs_config)


def test_config_needs_exactly_one_key(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        JwtConfig()
    with pytest.raises(ConfigError, match="exactly one"):
        JwtConfig(secret=SECRET, public_key=_pem_public(rsa_key))


def test_config_refuses_weak_or_wrong_keys() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        JwtConfig(secret="short")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        JwtConfig(public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="RSA key"):
        JwtConfig(public_key=_pem_public(ec.generate_private_key(ec.SECP256R1())))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="2048 bits"):
        JwtConfig(public_key=_pem_public(small))


# -- authenticate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("   ", "missing Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer   ", "malformed Authorization header"),
        ("Basic dXNlcjpwYXNz", "malformed Authorization header"),
        ("Bearer two tokens", "malformed Authorization header"),
        ("Token strata_x", "malformed Authorization header"),
    ],
)
def test_missing_or_malformed_header_is_refused(
    catalog: Catalog, hs_config: JwtConfig, header: str | None, why: str
) -> None:
    with pytest.raises(AuthError, match=why):
        authenticate(header, catalog, hs_config)


def test_api_key_round_trip(catalog: Catalog) -> None:
    key, token = catalog.create_key("acme", "service", "etl")
    principal = authenticate(f"Bearer {token}", catalog, None)
    assert principal == Principal(tenant="acme", role="service", subject=key.key_id, via="api_key")
    # The scheme is case-insensitive (RFC 7235); surrounding spaces do not matter.
    assert authenticate(f"  bearer {token} ", catalog, None) == principal


def test_revoked_api_key_is_refused(catalog: Catalog) -> None:
    key, token = catalog.create_key("acme", "viewer")
    assert authenticate(f"Bearer {token}", catalog, None).tenant == "acme"
    catalog.revoke_key(key.key_id)
    with pytest.raises(AuthError, match="API key"):
        authenticate(f"Bearer {token}", catalog, None)


def test_tampered_api_key_secret_is_refused(catalog: Catalog) -> None:
    _, token = catalog.create_key("acme", "viewer")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(AuthError, match="API key"):
        authenticate(f"Bearer {tampered}", catalog, None)


@pytest.mark.parametrize("token", ["strata_", "strata_nothex_" + "a" * 43, "strata_" + "0" * 16])
def test_unknown_or_malformed_api_key_is_refused(catalog: Catalog, token: str) -> None:
    with pytest.raises(AuthError, match="API key"):
        authenticate(f"Bearer {token}", catalog, JwtConfig(secret=SECRET))


def test_jwt_through_authenticate(catalog: Catalog, hs_config: JwtConfig) -> None:
    principal = authenticate(f"Bearer {hs_token()}", catalog, hs_config)
    assert (principal.via, principal.tenant) == ("jwt", "acme")
    with pytest.raises(AuthError, match="expired"):
        authenticate(f"Bearer {hs_token(exp=1)}", catalog, hs_config)


def test_jwt_is_refused_when_jwt_auth_is_off(catalog: Catalog) -> None:
    with pytest.raises(AuthError, match="JWT authentication is not configured"):
        authenticate(f"Bearer {hs_token()}", catalog, None)


# -- tenants and roles ------------------------------------------------------------------------

VIEWER = Principal(tenant="acme", role="viewer", subject="k1", via="api_key")
ADMIN = Principal(tenant=None, role="platform_admin", subject="root", via="jwt")


def test_tenant_principal_acts_for_its_own_tenant_only() -> None:
    assert require_tenant(VIEWER, None) == "acme"
    assert require_tenant(VIEWER, "acme") == "acme"
    with pytest.raises(ForbiddenError, match="'globex'"):
        require_tenant(VIEWER, "globex")


def test_platform_admin_acts_for_the_named_tenant_or_all() -> None:
    assert require_tenant(ADMIN, "globex") == "globex"
    assert require_tenant(ADMIN, None) is None
    # A home tenant on a platform admin does not narrow what it may name.
    homed = Principal(tenant="acme", role="platform_admin", subject="ops", via="jwt")
    assert require_tenant(homed, "globex") == "globex"
    assert require_tenant(homed, None) is None


def test_requested_tenant_must_be_a_valid_name() -> None:
    with pytest.raises(InvalidIdentifierError):
        require_tenant(ADMIN, "../acme")


def test_require_role() -> None:
    require_role(VIEWER, "viewer", "tenant_admin")
    with pytest.raises(ForbiddenError, match="needs role tenant_admin or platform_admin"):
        require_role(VIEWER, "tenant_admin", "platform_admin")
    with pytest.raises(ForbiddenError):
        require_role(ADMIN, "viewer")  # exact roles, no hierarchy
    with pytest.raises(ValueError, match="at least one role"):
        require_role(VIEWER)
    with pytest.raises(InvalidRoleError):
        require_role(VIEWER, "boss")  # type: ignore[arg-type]


def test_principal_invariants() -> None:
    with pytest.raises(PrincipalError, match="needs a tenant"):
        Principal(tenant=None, role="viewer", subject="k", via="api_key")
    with pytest.raises(InvalidRoleError, match="'root'"):
        Principal(tenant="acme", role="root", subject="k", via="api_key")  # type: ignore[arg-type]
    with pytest.raises(InvalidIdentifierError):
        Principal(tenant="ACME", role="viewer", subject="k", via="api_key")
    with pytest.raises(PrincipalError, match="subject"):
        Principal(tenant="acme", role="viewer", subject="", via="api_key")


def test_auth_module_does_not_import_a_web_framework() -> None:
    script = (
        "import sys, strata.api.auth, strata.core.access; "
        "bad = [m for m in ('fastapi', 'starlette') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
