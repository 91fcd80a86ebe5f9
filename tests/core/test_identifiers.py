"""Identifier rules: exactly the documented regexes are accepted, everything else is named."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core.errors import InvalidIdentifierError, Terminal
from strata.core.identifiers import (
    NAME_RULE,
    TENANT_RULE,
    is_valid_name,
    is_valid_tenant,
    validate_name,
    validate_tenant,
)

# The rules as documented in the module, written out again here so the tests are the spec.
NAME_PATTERN = r"[a-z][a-z0-9_]{0,62}"
TENANT_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"

names = st.from_regex(NAME_PATTERN, fullmatch=True)
tenants = st.from_regex(TENANT_PATTERN, fullmatch=True)

# Characters that would change a lake directory or a SQL identifier if let through.
FORBIDDEN_CHARS = ["A", "Z", "/", "\\", ".", "=", " ", "\t", "\n", ":", "*", "é", "\x00"]


def inject(valid: str, char: str, at: int) -> str:
    at %= len(valid) + 1
    return valid[:at] + char + valid[at:]


def assert_names_everything(
    exc: InvalidIdentifierError, kind: str, value: object, rule: str
) -> None:
    assert (exc.kind, exc.value, exc.rule) == (kind, value, rule)
    message = str(exc)
    assert kind in message
    shown = repr(value)
    assert (shown if len(shown) <= 80 else shown[:77] + "...") in message  # long values are cut
    assert rule in message


# -- accepted ------------------------------------------------------------------------------


@given(names)
def test_every_documented_name_validates_and_round_trips(name: str) -> None:
    assert is_valid_name(name)
    assert validate_name(name) == name
    assert validate_name(name, "namespace") == name


@given(tenants)
def test_every_documented_tenant_validates_and_round_trips(tenant: str) -> None:
    assert is_valid_tenant(tenant)
    assert validate_tenant(tenant) == tenant


@given(st.integers(min_value=0, max_value=10**64 - 1))
def test_non_negative_ints_are_tenants_in_decimal_form(tenant: int) -> None:
    assert validate_tenant(tenant) == str(tenant)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("a" * 63, True), ("a" * 64, False), ("a", True), ("a_", True), ("a1", True)],
)
def test_name_length_and_edges(value: str, ok: bool) -> None:
    assert is_valid_name(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("a" * 64, True), ("a" * 65, False), ("0", True), ("9-a_b", True), ("a-", True)],
)
def test_tenant_length_and_edges(value: str, ok: bool) -> None:
    assert is_valid_tenant(value) is ok


# -- rejected ------------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_name_validates_exactly_when_the_documented_regex_matches(value: str) -> None:
    expected = re.fullmatch(NAME_PATTERN, value) is not None
    assert is_valid_name(value) is expected
    if expected:
        assert validate_name(value) == value
    else:
        with pytest.raises(InvalidIdentifierError) as info:
            validate_name(value, "namespace")
        assert_names_everything(info.value, "namespace", value, NAME_RULE)


@given(st.text(max_size=80))
def test_tenant_validates_exactly_when_the_documented_regex_matches(value: str) -> None:
    expected = re.fullmatch(TENANT_PATTERN, value) is not None
    assert is_valid_tenant(value) is expected
    if not expected:
        with pytest.raises(InvalidIdentifierError) as info:
            validate_tenant(value)
        assert_names_everything(info.value, "tenant", value, TENANT_RULE)


@given(names, st.sampled_from(FORBIDDEN_CHARS), st.integers(min_value=0))
def test_a_forbidden_character_anywhere_breaks_a_name(name: str, char: str, at: int) -> None:
    bad = inject(name, char, at)
    with pytest.raises(InvalidIdentifierError) as info:
        validate_name(bad)
    assert_names_everything(info.value, "table", bad, NAME_RULE)


@given(tenants, st.sampled_from(FORBIDDEN_CHARS), st.integers(min_value=0))
def test_a_forbidden_character_anywhere_breaks_a_tenant(tenant: str, char: str, at: int) -> None:
    bad = inject(tenant, char, at)
    with pytest.raises(InvalidIdentifierError) as info:
        validate_tenant(bad)
    assert_names_everything(info.value, "tenant", bad, TENANT_RULE)


@given(names)
def test_uppercase_versions_of_names_are_rejected(name: str) -> None:
    # Case-insensitive file systems would merge 'Acme' and 'acme': a tenant-isolation bug.
    bad = name.upper()
    with pytest.raises(InvalidIdentifierError):
        validate_name(bad)
    with pytest.raises(InvalidIdentifierError):
        validate_tenant(bad)


BAD_NAMES = ["", "..", ".", "a/b", "a=b", "a b", "Acme", "_a", "-a", "1a", "a-b", "a" * 64, "a.b"]
BAD_TENANTS = ["", "..", ".", "a/b", "a=b", "a b", "Acme", "_a", "-a", "a" * 65, "a.b", "tenant=a"]


@pytest.mark.parametrize("value", BAD_NAMES)
@pytest.mark.parametrize("kind", ["namespace", "table"])
def test_bad_names_raise_naming_kind_value_and_rule(kind: str, value: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_name(value, kind)
    assert_names_everything(info.value, kind, value, NAME_RULE)
    assert str(info.value) == f"invalid {kind} {value!r}: {NAME_RULE}"


@pytest.mark.parametrize("value", BAD_TENANTS)
def test_bad_tenants_raise_naming_kind_value_and_rule(value: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_tenant(value)
    assert_names_everything(info.value, "tenant", value, TENANT_RULE)


@pytest.mark.parametrize(
    "value", [None, 1.5, b"acme", ["acme"], {"acme"}, object(), True, False, 0, 7]
)
def test_non_strings_are_not_names(value: object) -> None:
    assert not is_valid_name(value)
    with pytest.raises(InvalidIdentifierError) as info:
        validate_name(value)
    assert_names_everything(info.value, "table", value, NAME_RULE)


@pytest.mark.parametrize("value", [None, 1.5, b"acme", ["acme"], object(), True, False])
def test_non_strings_other_than_ints_are_not_tenants(value: object) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_tenant(value)
    # bool is an int subclass but True must not become tenant "1"
    assert_names_everything(info.value, "tenant", value, TENANT_RULE)


@given(st.integers(max_value=-1))
def test_negative_ints_are_not_tenants(value: int) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_tenant(value)
    assert_names_everything(info.value, "tenant", value, TENANT_RULE)


def test_an_int_too_long_for_a_tenant_is_rejected() -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_tenant(10**64)  # 65 digits
    assert info.value.kind == "tenant"


@pytest.mark.parametrize(
    ("validate", "value"),
    [(validate_tenant, 10**5000), (validate_tenant, -(10**5000)), (validate_name, 10**5000)],
    ids=["tenant", "negative-tenant", "name"],  # pytest's own id would str() the int and fail
)
def test_a_huge_int_is_still_an_identifier_error(
    validate: Callable[[object], str], value: int
) -> None:
    # Past 4300 digits both str(int) and repr(int) raise a plain ValueError; callers (the API's
    # error mapping) catch StrataError, so this must stay an InvalidIdentifierError.
    with pytest.raises(InvalidIdentifierError):
        validate(value)


def test_identifier_errors_are_terminal_value_errors() -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_tenant("Acme")
    assert isinstance(info.value, Terminal)
    assert isinstance(info.value, ValueError)


def test_rules_state_the_regexes() -> None:
    assert NAME_PATTERN in NAME_RULE
    assert TENANT_PATTERN in TENANT_RULE
