"""Instances (registration, heartbeat TTL) and the shard map the leader writes, on real Redis."""

from __future__ import annotations

import time

import pytest

from mlflowdsl.runtime.coordination import (
    Heartbeat,
    InstanceInfo,
    InstanceRegistry,
    LeaderLease,
    RedisGateway,
    ShardBalancer,
    ShardMap,
    coordination_status,
    owner_of,
    read_shard_map,
    write_shard_map,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def gw(redis_url):
    gateway = RedisGateway(redis_url, prefix="t-shards")
    yield gateway
    gateway.close()


def test_register_heartbeat_and_expiry(gw):
    registry = InstanceRegistry(gw, beat_s=0.2)
    registry.register(InstanceInfo("orch-a", ("training",), load=0.0))
    registry.register(InstanceInfo("orch-b", ()))
    assert [i.id for i in registry.live()] == ["orch-a", "orch-b"]
    assert 0 < gw.client.pttl("t-shards:instance:orch-a") <= 600  # TTL = 3 x beat
    for _ in range(5):  # 1 s of beats keeps orch-a; orch-b stops beating and expires
        time.sleep(0.2)
        assert registry.heartbeat("orch-a", load=0.75)
    live = registry.live()
    assert [i.id for i in live] == ["orch-a"]
    assert live[0].load == 0.75 and live[0].domains == ("training",) and live[0].last_heartbeat > 0
    assert gw.client.zrange("t-shards:instances", 0, -1) == [b"orch-a"]  # pruned
    assert not registry.heartbeat("orch-b")  # unknown now: must register again
    registry.deregister("orch-a")
    assert registry.live() == []


def test_heartbeat_thread_reregisters_after_redis_forgets(gw):
    registry = InstanceRegistry(gw, beat_s=0.1)
    beat = Heartbeat(registry, InstanceInfo("orch-a", ("rag",)), load=lambda: 0.5).start()
    try:
        assert [i.id for i in registry.live()] == ["orch-a"]
        gw.client.flushdb()  # what a Redis restart without persistence does
        deadline = time.monotonic() + 2
        while [i.id for i in registry.live()] != ["orch-a"]:
            assert time.monotonic() < deadline, "the heartbeat did not register again"
            time.sleep(0.05)
        assert registry.live()[0].domains == ("rag",) and registry.live()[0].load == 0.5
    finally:
        beat.stop()
    assert registry.live() == []  # stop() deregisters


def test_leader_balances_shards_as_instances_join_and_leave(gw):
    registry = InstanceRegistry(gw, beat_s=1.0)
    lease = LeaderLease(gw, "orch-a", lease_s=3.0, renew_s=1.0)
    lease.try_acquire()
    balancer = ShardBalancer(lease, registry, domains={"etl"})
    registry.register(InstanceInfo("orch-a", ("training", "inference")))
    registry.register(InstanceInfo("orch-b", ("training", "rag")))
    first = balancer.rebalance()
    assert first is not None and first.epoch == 1
    assert owner_of(gw, "inference") == "orch-a" and owner_of(gw, "rag") == "orch-b"
    assert owner_of(gw, "training") in {"orch-a", "orch-b"}
    assert "etl" not in first.assignments and first.unassigned == ("etl",)  # nobody serves it yet
    assert balancer.rebalance() is None  # nothing changed: no write
    registry.register(InstanceInfo("orch-c", ("*",)))
    second = balancer.rebalance()
    assert second.owner_of("etl") == "orch-c"
    assert read_shard_map(gw) == second
    registry.deregister("orch-b")
    third = balancer.rebalance()
    assert third.owner_of("rag") == "orch-c" and "orch-b" not in third.assignments.values()
    registry.deregister("orch-c")
    fourth = balancer.rebalance()
    assert fourth.assignments == {"inference": "orch-a", "training": "orch-a"}
    assert fourth.unassigned == ("etl", "rag")  # remembered, waiting for an instance that serves them
    registry.register(InstanceInfo("orch-c", ("*",)))
    third = balancer.rebalance()
    status = coordination_status(gw)
    assert status["leader"] == {"id": "orch-a", "epoch": 1}
    assert status["shards"]["assignments"] == third.assignments
    assert [i["id"] for i in status["instances"]] == ["orch-a", "orch-c"]
    assert status["breaker"] == "closed" and status["prefix"] == "t-shards"


def test_a_deposed_leader_cannot_overwrite_the_shard_map(gw):
    old = LeaderLease(gw, "old", lease_s=3.0, renew_s=1.0)
    new = LeaderLease(gw, "new", lease_s=3.0, renew_s=1.0)
    old.try_acquire()
    old.release()
    new.try_acquire()
    assert write_shard_map(new, ShardMap(epoch=new.epoch, assignments={"training": "new"}))
    assert not write_shard_map(old, ShardMap(epoch=old.epoch, assignments={"training": "old"}))
    assert owner_of(gw, "training") == "new"


def test_not_leader_means_no_rebalance(gw):
    registry = InstanceRegistry(gw)
    registry.register(InstanceInfo("orch-a"))
    lease = LeaderLease(gw, "orch-a", lease_s=3.0, renew_s=1.0)
    assert ShardBalancer(lease, registry, {"training"}).rebalance() is None
    assert read_shard_map(gw) is None
