"""Tests for the deterministic workforce-compliance demo generator."""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.demo.workforce import DemoRecord, generate, plan_tenants

TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
FIELD_RE = re.compile(r"[a-z][a-z0-9_]*")
RUT_RE = re.compile(r"(\d{1,2})\.(\d{3})\.(\d{3})-([0-9K])")
EMAIL_RE = re.compile(r"[a-z0-9._-]+@[a-z0-9-]+(\.[a-z0-9-]+)+")
PHONE_RE = re.compile(r"\+56 9 \d{4} \d{4}")
DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
TABLES = {
    ("wfm", "companies"),
    ("wfm", "profiles"),
    ("wfm", "projects"),
    ("wfm", "assignments"),
    ("wfm", "licenses"),
    ("labs", "test_results"),
}
ALLOWED_TYPES = (str, int, float, bool, type(None), datetime, date)
RESERVED = {"ingested_at", "source_service"}
# Small generations are cheap; hypothesis must not write a database into the repo.
FAST = settings(max_examples=15, deadline=None, database=None)
seeds = st.integers(min_value=0, max_value=2**32)
tiny_scales = st.floats(min_value=0.002, max_value=0.03)


def check_digit(number: int) -> str:
    """Module-11 RUT verifier, written independently of the generator's."""
    total, factor = 0, 2
    for digit in reversed(str(number)):
        total += int(digit) * factor
        factor = factor + 1 if factor < 7 else 2
    rest = 11 - total % 11
    return {11: "0", 10: "K"}.get(rest, str(rest))


def rut_is_valid(rut: object) -> bool:
    match = RUT_RE.fullmatch(rut) if isinstance(rut, str) else None
    return match is not None and check_digit(int("".join(match.groups()[:3]))) == match[4]


def rows(records: Iterable[DemoRecord], table: str) -> list[dict[str, object]]:
    return [r.record for r in records if r.table == table]


def stamp(record: dict[str, object], field: str) -> datetime:
    value = record[field]
    assert isinstance(value, datetime)
    return value


def day(record: dict[str, object], field: str) -> date:
    value = record[field]
    assert isinstance(value, date)
    return value


def later_emissions(records: list[DemoRecord]) -> list[tuple[DemoRecord, DemoRecord]]:
    """(first, later) pairs for every id emitted more than once within a table."""
    first: dict[tuple[str, object], DemoRecord] = {}
    pairs = []
    for r in records:
        key = (r.table, r.record["id"])
        if key in first:
            pairs.append((first[key], r))
        else:
            first[key] = r
    return pairs


def na_rows_follow_typed_rows(records: Iterable[DemoRecord]) -> bool:
    typed_seen: set[str] = set()
    for r in records:
        if r.table != "test_results":
            continue
        value = r.record["result_value"]
        if isinstance(value, float):
            typed_seen.add(r.tenant)
        elif value != "N/A" or r.tenant not in typed_seen:
            return False
    return True


@pytest.fixture(scope="module")
def small() -> list[DemoRecord]:
    return list(generate(seed=7, scale=0.01))


@pytest.fixture(scope="module")
def full() -> list[DemoRecord]:
    return list(generate())


def test_same_inputs_give_identical_output() -> None:
    assert list(generate(seed=3, scale=0.01)) == list(generate(seed=3, scale=0.01))
    assert list(generate(scale=0.01)) == list(generate(scale=0.01, now=DEFAULT_NOW))


def test_seed_and_now_change_the_output() -> None:
    base = list(generate(seed=1, scale=0.01))
    assert base != list(generate(seed=2, scale=0.01))
    assert base != list(generate(seed=1, scale=0.01, now=DEFAULT_NOW + timedelta(days=1)))


def test_now_may_be_any_timezone_but_not_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(now=datetime(2026, 1, 1))
    santiago = DEFAULT_NOW.astimezone(timezone(timedelta(hours=-3)))  # the same instant
    assert list(generate(scale=0.01, now=santiago)) == list(generate(scale=0.01))


@pytest.mark.parametrize("scale", [0, -1.0, math.nan, math.inf])
def test_invalid_scale_is_rejected_eagerly(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        generate(scale=scale)
    with pytest.raises(ValueError, match="scale"):
        plan_tenants(scale=scale)


def test_check_digit_helper_matches_known_ruts() -> None:
    assert rut_is_valid("12.345.678-5")
    assert rut_is_valid("11.111.111-1")
    assert not rut_is_valid("12.345.678-4")
    assert check_digit(10_000_013) == "K"


@FAST
@given(seed=seeds, scale=st.floats(min_value=0.001, max_value=20))
def test_plan_has_valid_unique_tenants(seed: int, scale: float) -> None:
    plan = plan_tenants(seed, scale)
    ids = [t.tenant for t in plan]
    assert all(TENANT_RE.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert 12 <= len(plan) <= 40
    assert all(t.workers >= 1 and t.name for t in plan)


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_sizes_are_heavy_tailed_at_scale_one(seed: int) -> None:
    workers = sorted(t.workers for t in plan_tenants(seed, 1.0))
    assert len(workers) == 12
    assert workers[-1] >= 10 * workers[0]
    assert 3000 <= workers[-1] <= 5000
    assert sum(150 <= w < 1000 for w in workers) >= 3
    assert sum(w <= 100 for w in workers) >= 6


def test_tenants_grow_mildly_with_scale_and_keep_their_ids() -> None:
    one, ten = plan_tenants(7, 1.0), plan_tenants(7, 10.0)
    assert 12 < len(ten) <= 40
    assert [t.tenant for t in ten[: len(one)]] == [t.tenant for t in one]
    tiny = plan_tenants(7, 0.01)
    assert [t.tenant for t in tiny] == [t.tenant for t in one]
    assert all(t.workers >= 1 for t in tiny)
    assert sum(t.workers for t in ten) > 5 * sum(t.workers for t in one)


def test_tiny_scale_is_small_and_complete(small: list[DemoRecord]) -> None:
    plan = plan_tenants(7, 0.01)
    assert len(small) < 5000
    present = {(r.tenant, r.namespace, r.table) for r in small}
    for tenant in plan:
        for namespace, table in TABLES:
            assert (tenant.tenant, namespace, table) in present


@FAST
@given(seed=seeds, scale=tiny_scales)
def test_every_tenant_has_every_table_and_na_rows_come_late(seed: int, scale: float) -> None:
    records = list(generate(seed, scale))
    present = {(r.tenant, r.namespace, r.table) for r in records}
    for tenant in plan_tenants(seed, scale):
        assert {(tenant.tenant, ns, t) for ns, t in TABLES} <= present
    assert na_rows_follow_typed_rows(records)


def test_companies_come_first(small: list[DemoRecord]) -> None:
    plan = plan_tenants(7, 0.01)
    head = small[: len(plan)]
    assert [r.table for r in head] == ["companies"] * len(plan)
    assert [r.tenant for r in head] == [t.tenant for t in plan]
    assert all(r.record["id"] == r.tenant for r in head)


def test_envelope_matches_the_source_service(small: list[DemoRecord]) -> None:
    for r in small:
        assert (r.namespace, r.table) in TABLES
        if r.namespace == "wfm":
            assert r.source_service == "wfm-service"
        else:
            assert r.source_service == f"{r.record['lab']}-sync"
            assert r.record["lab"] in {"saferapp", "fit2000"}
        assert r.record["company_id"] == r.tenant
        assert isinstance(r.record["id"], str | int)


def test_only_allowed_types_and_field_names(small: list[DemoRecord]) -> None:
    for r in small:
        for key, value in r.record.items():
            assert FIELD_RE.fullmatch(key), key
            assert key not in RESERVED
            assert isinstance(value, ALLOWED_TYPES), (key, value)
            if isinstance(value, datetime):
                assert value.utcoffset() == timedelta(0), (key, value)


def test_each_table_keeps_one_set_of_columns(small: list[DemoRecord]) -> None:
    columns: dict[str, set[frozenset[str]]] = defaultdict(set)
    for r in small:
        columns[r.table].add(frozenset(r.record))
    assert all(len(shapes) == 1 for shapes in columns.values())


def test_timestamps_are_ordered_and_in_the_past(small: list[DemoRecord]) -> None:
    for r in small:
        created, updated = stamp(r.record, "created_at"), stamp(r.record, "updated_at")
        assert created <= updated <= DEFAULT_NOW
        deleted = r.record["deleted_at"]
        assert deleted is None or (isinstance(deleted, datetime) and created <= deleted)


def test_references_resolve_within_the_tenant(small: list[DemoRecord]) -> None:
    ids: dict[tuple[str, str], set[object]] = defaultdict(set)
    for r in small:
        ids[(r.tenant, r.table)].add(r.record["id"])
    for r in small:
        if "profile_id" in r.record:
            assert r.record["profile_id"] in ids[(r.tenant, "profiles")]
        if "project_id" in r.record:
            assert r.record["project_id"] in ids[(r.tenant, "projects")]
        head = r.record.get("reporting_head_id")
        assert head is None or head in ids[(r.tenant, "profiles")]


def test_clean_ruts_have_valid_check_digits(small: list[DemoRecord]) -> None:
    ruts = [r.record[k] for r in small for k in ("rut", "worker_rut") if k in r.record]
    present = [rut for rut in ruts if rut is not None]
    assert len(present) > 0.9 * len(ruts)
    assert all(rut_is_valid(rut) for rut in present)


def test_dirty_row_kinds_are_all_present(small: list[DemoRecord]) -> None:
    profiles, tests = rows(small, "profiles"), rows(small, "test_results")
    assert any(not EMAIL_RE.fullmatch(str(p["email"])) for p in profiles)
    assert any(p["phone"] is not None and not PHONE_RE.fullmatch(str(p["phone"])) for p in profiles)
    assert any(p["rut"] is None for p in profiles)
    assert any(t["worker_rut"] is None for t in tests)
    assert any(t["result_value"] == "N/A" for t in tests)
    licenses = rows(small, "licenses")
    assert any(day(lic, "expires_on") < day(lic, "issued_on") for lic in licenses)
    pairs = later_emissions(small)
    deletes = [later for _, later in pairs if later.record["deleted_at"] is not None]
    updates = [(a, b) for a, b in pairs if b.record["deleted_at"] is None]
    assert deletes
    assert updates
    assert {b.table for _, b in updates} >= {"profiles", "licenses", "assignments", "test_results"}


def test_reemitted_rows_are_later_and_changed(small: list[DemoRecord]) -> None:
    for first, later in later_emissions(small):
        assert later.tenant == first.tenant
        assert stamp(later.record, "updated_at") > stamp(first.record, "updated_at")
        changed = {k for k in first.record if first.record[k] != later.record[k]}
        assert changed - {"updated_at"}, first.record


def test_license_expiry_states_are_all_present(small: list[DemoRecord]) -> None:
    today = DEFAULT_NOW.date()
    expiries = [day(lic, "expires_on") for lic in rows(small, "licenses")]
    assert any(e < today for e in expiries)
    assert any(today <= e <= today + timedelta(days=30) for e in expiries)
    assert any(e > today + timedelta(days=30) for e in expiries)


def test_generation_is_lazy() -> None:
    started = time.perf_counter()
    head = list(itertools.islice(generate(scale=10), 2000))
    assert len(head) == 2000
    assert time.perf_counter() - started < 5  # a full scale-10 run takes several times this


def test_scale_one_volume_and_dirt(full: list[DemoRecord]) -> None:
    assert 80_000 <= len(full) <= 150_000
    counts = Counter(r.table for r in full)
    assert counts["companies"] >= 12
    assert counts["test_results"] > counts["profiles"] > counts["projects"]
    dirty = len(later_emissions(full))
    for r in full:
        rec = r.record
        if r.table == "profiles":
            bad_phone = rec["phone"] is not None and not PHONE_RE.fullmatch(str(rec["phone"]))
            dirty += rec["rut"] is None or bad_phone or not EMAIL_RE.fullmatch(str(rec["email"]))
        elif r.table == "licenses":
            dirty += day(rec, "expires_on") < day(rec, "issued_on")
        elif r.table == "test_results":
            dirty += rec["worker_rut"] is None or rec["result_value"] == "N/A"
    assert 0.01 <= dirty / len(full) <= 0.03
    na = sum(1 for rec in rows(full, "test_results") if rec["result_value"] == "N/A")
    assert 1 <= na <= 100  # a handful, not a flood
    today = DEFAULT_NOW.date()
    valid = [day(lic, "expires_on") > today for lic in rows(full, "licenses")]
    assert sum(valid) > 0.6 * len(valid)
    assert na_rows_follow_typed_rows(full)
