"""Distributed locks against a real Redis: semantics in process, then 8 processes x 1,000
cycles around a GET/SET counter, and a SIGKILLed holder whose lock frees at its TTL."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from coord_proc import Procs
from mlflowdsl.runtime.coordination import DistributedLock, LockLost, LockTimeout, RedisGateway

pytestmark = pytest.mark.integration

PREFIX = "t-locks"


@pytest.fixture
def gw(redis_url):
    gateway = RedisGateway(redis_url, prefix=PREFIX)
    yield gateway
    gateway.close()


@pytest.fixture
def procs(redis_url, tmp_path):
    pool = Procs(redis_url, PREFIX, tmp_path)
    yield pool
    pool.close()


def test_lock_is_exclusive_and_times_out_naming_the_lock(gw):
    with DistributedLock(gw, "shard-map", ttl_s=5):
        other = DistributedLock(gw, "shard-map", timeout_s=0.2)
        started = time.monotonic()
        with pytest.raises(LockTimeout) as info:
            other.acquire()
        assert 0.2 <= time.monotonic() - started < 0.6
        assert "shard-map" in str(info.value) and f"{PREFIX}:lock:shard-map" in str(info.value)
    assert DistributedLock(gw, "shard-map", timeout_s=0).try_acquire()  # released on exit


def test_ttl_bounds_the_hold_and_release_of_a_lost_lock_raises(gw):
    first = DistributedLock(gw, "job", ttl_s=0.3).acquire()
    time.sleep(0.4)  # the TTL runs out while "holding"
    second = DistributedLock(gw, "job", ttl_s=5).acquire()
    with pytest.raises(LockLost):
        first.release()
    assert not first.release(strict=False)
    assert second.owned()  # the stale holder's release did not delete the new holder's lock
    second.release()


def test_context_manager_reports_a_lost_lock_but_not_over_the_body_error(gw):
    with pytest.raises(LockLost):
        with DistributedLock(gw, "a", ttl_s=0.2):
            time.sleep(0.3)
    with pytest.raises(KeyError):  # the body's own error wins
        with DistributedLock(gw, "b", ttl_s=0.2):
            time.sleep(0.3)
            raise KeyError("body")


def test_renewal_keeps_a_long_holder_past_its_ttl(gw):
    lock = DistributedLock(gw, "long", ttl_s=0.3, renew=True).acquire()
    time.sleep(1.0)  # > 3 x TTL
    assert lock.owned() and not lock.lost
    assert not DistributedLock(gw, "long", timeout_s=0).try_acquire()
    lock.release()
    assert DistributedLock(gw, "long", timeout_s=0).try_acquire()


def test_a_retried_acquire_recognises_its_own_token(gw):
    lock = DistributedLock(gw, "retry", token="tok-1")
    gw.client.set(lock.key, "tok-1", px=5000)  # as if the first SET's reply had been lost
    assert lock.try_acquire()
    assert not DistributedLock(gw, "retry", token="tok-2", timeout_s=0).try_acquire()


def test_prefixes_separate_deployments(redis_url):
    team_a = RedisGateway(redis_url, prefix="team-a")
    team_b = RedisGateway(redis_url, prefix="team-b")
    with DistributedLock(team_a, "x"):
        assert DistributedLock(team_b, "x", timeout_s=0).try_acquire()
    team_a.close()
    team_b.close()


@pytest.mark.slow
def test_8_processes_x_1000_cycles_lose_no_update(procs, redis_url):
    lockers = [procs.start("locker", f"locker-{i}", "--cycles", "1000", "--counter", "counter", "--ttl", "5")
               for i in range(8)]
    for proc in lockers:
        try:
            assert proc.wait(timeout=120) == 0
        except subprocess.TimeoutExpired:
            pytest.fail("lockers did not finish within 120 s")
    client = redis.Redis.from_url(redis_url)
    assert int(client.get(f"{PREFIX}:counter")) == 8 * 1000
    assert client.get(f"{PREFIX}:lock:counter-lock") is None  # the last holder released
    client.close()


def test_lock_of_a_sigkilled_holder_is_free_again_after_its_ttl(procs, gw):
    ttl = 1.0
    procs.start("holder", "holder", "--name", "job", "--ttl", str(ttl))
    deadline = time.monotonic() + 20
    while not procs.events("holder", "held"):
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.01)
    procs.kill("holder")
    killed_at = time.monotonic()
    assert not DistributedLock(gw, "job", timeout_s=0).try_acquire()  # the dead holder's TTL still runs
    DistributedLock(gw, "job", ttl_s=5, timeout_s=ttl + 1.0).acquire()
    waited = time.monotonic() - killed_at
    assert waited <= ttl + 0.25, f"free only after {waited:.2f}s (TTL {ttl}s + polling)"
