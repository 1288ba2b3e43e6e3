"""Redis restarted mid-run: the gateway fails with a clear error, its breaker opens and closes
again, the leader steps down and is elected again, the heartbeat registers the instance again."""

from __future__ import annotations

import threading
import time

import pytest

from mlflowdsl.runtime.coordination import (
    BackoffPolicy,
    Heartbeat,
    InstanceInfo,
    InstanceRegistry,
    LeaderElector,
    LeaderLease,
    RedisGateway,
    RedisUnavailable,
)

pytestmark = pytest.mark.integration


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.slow
def test_redis_restart_breaker_opens_and_closes_and_the_elector_recovers(redis_server, redis_url):
    gw = RedisGateway(redis_url, prefix="t-outage", socket_timeout=0.3,
                      retry=BackoffPolicy(attempts=3, base_s=0.02, cap_s=0.2, max_delay_s=0.5),
                      breaker_fail_max=3, breaker_reset_s=0.5)
    lease = LeaderLease(gw, "orch-a", lease_s=1.0, renew_s=0.25)
    elected, lost = [], []
    elector = LeaderElector(lease, on_elected=elected.append, on_lost=lost.append).start()
    registry = InstanceRegistry(gw, beat_s=0.2)
    beat = Heartbeat(registry, InstanceInfo("orch-a", ("training",))).start()

    seen: list[str] = []  # breaker states in order of change, sampled by a thread
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            state = gw.breaker_state
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_for(lambda: elected and lease.is_leader, 3, "the first election")
        assert elected == [1]

        redis_server.stop()
        stopped_at = time.monotonic()
        with pytest.raises(RedisUnavailable) as info:
            gw.ping()
        assert redis_url in str(info.value)
        wait_for(lambda: not lease.is_leader, 1.5, "the leader to step down")
        assert time.monotonic() - stopped_at <= 0.7 * 1.0 + 0.3  # on its own clock, not the lost lease
        wait_for(lambda: lost, 1.0, "on_lost")
        wait_for(lambda: gw.breaker_state == "open", 3, "the breaker to open")
        time.sleep(1.0)  # an outage of a few breaker periods: trials fail and it opens again

        redis_server.start()
        restarted_at = time.monotonic()
        wait_for(lambda: len(elected) >= 2 and lease.is_leader, 5, "a leader again after the restart")
        recovered = time.monotonic() - restarted_at
        assert gw.breaker_state == "closed"
        assert gw.ping()
        # Without persistence Redis came back empty, so the epoch counter restarted: this is why
        # docs/operations.md requires AOF for the fencing guarantee.
        assert elected[-1] == 1
        wait_for(lambda: [i.id for i in registry.live()] == ["orch-a"], 2, "the heartbeat to register again")
        assert recovered < 3.0
    finally:
        sampling.set()
        sampler.join()
        elector.stop()
        beat.stop()
        gw.close()
    # closed -> open (-> half-open -> open)* -> half-open -> closed
    assert seen[0] == "closed" and "open" in seen and seen[-1] == "closed"
    assert seen.index("open") < len(seen) - 1
