"""The widget data cache: hits give the same rows, a refresh invalidates, Redis works and
keeps tenants apart, and a Redis outage only costs a computation.

Redis is the real server at 127.0.0.1:6379 (``.ci/run`` starts it): in CI a missing Redis
fails these tests, elsewhere they skip with the command that starts it. Each test uses a
key prefix of its own and deletes its keys afterwards.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from api_helpers import (
    ENV,
    PROJECTIONS,
    SECRET,
    Keys,
    TestClient,
    _assignment,
    _bronze,
    bearer,
    refresh,
    serve,
    wait_for_job,
)

from strata.api.cache import MemoryCache, RedisCache, widget_key
from strata.api.settings import load_serve_settings
from support.services import REDIS_START, REDIS_URL, service_missing

WIDGET = "file-overview-0"  # the file dashboard's timeseries of assignment_count


def data(client: TestClient, token: str, widget_id: str = WIDGET, **params: str) -> Any:
    response = client.get(
        f"/api/v1/analytics/widgets/{widget_id}/data", params=params, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        service_missing(f"Redis at {REDIS_URL}", REDIS_START, exc)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    mine = f"strata-test-{uuid.uuid4().hex}:"
    yield mine
    keys = list(redis_client.scan_iter(match=f"{mine}*"))
    if keys:
        redis_client.delete(*keys)


def redis_settings(project: Path, prefix: str, url: str = REDIS_URL) -> Any:
    base = load_serve_settings(project, ENV)
    return dataclasses.replace(base, cache_url=url, cache_prefix=prefix, cache_ttl_s=60)


# -- the in-process cache (the default) ---------------------------------------------------


def test_a_cached_read_gives_the_same_rows(client: TestClient, keys: Keys) -> None:
    first = data(client, keys.acme_viewer, start="2023-01-01", end="2023-12-31")
    second = data(client, keys.acme_viewer, start="2023-01-01", end="2023-12-31")
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["rows"] == first["rows"]
    assert second["columns"] == first["columns"]
    assert second["freshness"]["last_refresh"] == first["freshness"]["last_refresh"]
    # another range is another entry
    assert data(client, keys.acme_viewer, start="2023-01-01", end="2023-06-30")["cached"] is False


def test_tenants_never_share_an_entry(client: TestClient, keys: Keys) -> None:
    """The same file widget, range, metric version and table versions for two tenants: the
    keys differ by the tenant alone, and each tenant gets its own rows."""
    params = {"start": "2024-02-01", "end": "2024-05-31"}
    acme = data(client, keys.acme_viewer, **params)
    globex = data(client, keys.globex_viewer, **params)
    assert globex["cached"] is False  # not acme's entry
    assert acme["rows"] == [["2024-03-01", 2], ["2024-04-01", 1]]
    assert globex["rows"] == [["2024-03-01", 1]]
    assert data(client, keys.globex_viewer, **params)["rows"] == globex["rows"]
    assert data(client, keys.acme_viewer, **params)["rows"] == acme["rows"]


def test_a_refresh_invalidates(project: Path, client: TestClient, keys: Keys) -> None:
    params = {"start": "2024-01-01", "end": "2024-12-31"}
    before = data(client, keys.acme_viewer, **params)
    assert data(client, keys.acme_viewer, **params)["cached"] is True
    # a new assignment lands in bronze, then the existing refresh job rebuilds the explore
    _bronze(
        project / "lake",
        "assignments",
        "acme",
        [_assignment("a4", "acme", "1", "lead", 2.0, "2024-06-01")],
    )
    job = refresh(client, keys.acme_admin, "explore.assignments").json()
    assert wait_for_job(client, keys.acme_admin, job["job_id"])["status"] == "succeeded"
    after = data(client, keys.acme_viewer, **params)
    assert after["cached"] is False
    assert after["rows"] == [*before["rows"], ["2024-06-01", 1]]
    assert data(client, keys.acme_viewer, **params)["cached"] is True
    projections = client.get(PROJECTIONS, headers=bearer(keys.acme_viewer))
    assert projections.status_code == 200


def test_memory_cache_is_an_lru_with_a_ttl() -> None:
    cache = MemoryCache(max_entries=2, ttl_s=60)
    keys = [_key("acme", str(i)) for i in range(3)]
    for key in keys:
        cache.put(key, {"n": key.text})
    assert cache.get(keys[0]) is None  # evicted: least recently used
    assert cache.get(keys[2]) == {"n": keys[2].text}
    now = [100.0]
    short = MemoryCache(ttl_s=5, clock=lambda: now[0])
    short.put(keys[0], {"n": 1})
    now[0] = 104.9
    assert short.get(keys[0]) == {"n": 1}
    now[0] = 105.0
    assert short.get(keys[0]) is None


# -- keys ----------------------------------------------------------------------------------


def _key(tenant: str, widget: str = "w1", prefix: str = "p:") -> Any:
    return widget_key(
        prefix=prefix,
        tenant=tenant,
        widget_id=widget,
        definition_hash="d" * 64,
        metrics=[("assignment_count", 1)],
        tables={"gold.fct_assignments": 3, "gold.dim_workers": 2},
        start="2024-01-01",
        end="2024-12-31",
    )


def test_keys_name_the_tenant_and_everything_the_answer_depends_on() -> None:
    acme, globex = _key("acme"), _key("globex")
    assert acme.text.startswith("p:w:acme:")
    assert globex.text.startswith("p:w:globex:")
    assert acme.text.split(":")[-1] != globex.text.split(":")[-1]  # the tenant is hashed too
    changed = widget_key(
        prefix="p:",
        tenant="acme",
        widget_id="w1",
        definition_hash="d" * 64,
        metrics=[("assignment_count", 1)],
        tables={"gold.fct_assignments": 4, "gold.dim_workers": 2},  # a refresh
        start="2024-01-01",
        end="2024-12-31",
    )
    assert changed.text != acme.text


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_an_entry_is_never_read_by_another_tenant(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Write acme's answer where globex's would go, as a colliding key would: the tenant
    recorded in the value does not match, so globex reads a miss, never acme's rows."""
    acme, globex = _key("acme"), _key("globex")
    if kind == "memory":
        cache: Any = MemoryCache()
    else:
        prefix = request.getfixturevalue("prefix")
        acme, globex = _key("acme", prefix=prefix), _key("globex", prefix=prefix)
        cache = RedisCache(REDIS_URL, ttl_s=60, prefix=prefix)
    cache.put(acme, {"rows": [["secret of acme"]]})
    assert cache.get(acme) == {"rows": [["secret of acme"]]}
    colliding = dataclasses.replace(acme, tenant="globex")  # acme's storage key, globex asking
    assert cache.get(colliding) is None
    if kind == "memory":
        raw = cache._entries[acme.text][1]
        cache.put_raw(globex.text, raw)
    else:
        raw = redis.Redis.from_url(REDIS_URL).get(acme.text)
        redis.Redis.from_url(REDIS_URL).set(globex.text, raw, px=60_000)
    assert cache.get(globex) is None
    cache.close()


# -- Redis ---------------------------------------------------------------------------------


def test_redis_backed_reads(
    project: Path, keys: Keys, redis_client: redis.Redis, prefix: str
) -> None:
    params = {"start": "2024-01-01", "end": "2024-06-30"}
    with serve(project, settings=redis_settings(project, prefix)) as client:
        first = data(client, keys.acme_viewer, **params)
        second = data(client, keys.acme_viewer, **params)
        globex = data(client, keys.globex_viewer, **params)
        assert (first["cached"], second["cached"], globex["cached"]) == (False, True, False)
        assert second["rows"] == first["rows"]
        assert SECRET not in str(first) + str(second)
        assert globex["rows"] == [["2024-03-01", 1]]
    stored = sorted(k.decode() for k in redis_client.scan_iter(match=f"{prefix}*"))
    assert [k.split(":")[1:3] for k in stored] == [["w", "acme"], ["w", "globex"]]
    ttl = redis_client.pttl(stored[0])
    assert 0 < ttl <= 60_000
    # a second server sharing the Redis reads the entries the first wrote
    with serve(project, settings=redis_settings(project, prefix)) as again:
        assert data(again, keys.acme_viewer, **params)["cached"] is True


def test_a_redis_outage_only_costs_a_computation(
    project: Path, keys: Keys, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = redis_settings(project, prefix, url="redis://127.0.0.1:1/0")  # nothing listens
    with serve(project, settings=down) as client:
        first = data(client, keys.acme_viewer)
        second = data(client, keys.acme_viewer)
    assert (first["cached"], second["cached"]) == (False, False)
    assert second["rows"] == first["rows"]
    assert "widget cache unavailable" in caplog.text
