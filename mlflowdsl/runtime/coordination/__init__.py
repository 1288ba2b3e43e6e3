"""Cluster coordination on Redis: one gateway for every call (retries, circuit breaker), a
fenced leader lease, token-owned locks, instance heartbeats and shards by capability domain.

Typical instance wiring (what ``mlw orchestrator start`` builds on)::

    gw = gateway_from_settings(settings)  # URL, prefix, timeouts, retries, breaker
    config = coordination_config(settings)
    registry = InstanceRegistry(gw, beat_s=config.heartbeat_s)
    Heartbeat(registry, InstanceInfo("orch-a", ("training",))).start()
    lease = LeaderLease(gw, "orch-a", lease_s=config.lease_s, renew_s=config.renew_s)
    balancer = ShardBalancer(lease, registry)
    LeaderElector(lease, on_elected=lambda epoch: balancer.rebalance(force=True)).start()
    # ... every tick, if lease.is_leader: balancer.rebalance()
    # ... dispatch only executions whose domain: owner_of(gw, domain) == "orch-a"
"""

from __future__ import annotations

from mlflowdsl.runtime.coordination.config import CoordinationConfig, coordination_config, gateway_from_settings
from mlflowdsl.runtime.coordination.gateway import BackoffPolicy, RedisGateway, RedisUnavailable, redact_url
from mlflowdsl.runtime.coordination.instances import Heartbeat, InstanceInfo, InstanceRegistry
from mlflowdsl.runtime.coordination.leader import FencingRejected, LeaderElector, LeaderLease
from mlflowdsl.runtime.coordination.locks import DistributedLock, LockLost, LockTimeout
from mlflowdsl.runtime.coordination.shards import (
    ShardBalancer,
    ShardMap,
    compute_shard_map,
    owner_of,
    read_shard_map,
    rendezvous_assign,
    write_shard_map,
)
from mlflowdsl.runtime.coordination.status import coordination_status

__all__ = [
    "BackoffPolicy", "CoordinationConfig", "DistributedLock", "FencingRejected", "Heartbeat", "InstanceInfo",
    "InstanceRegistry", "LeaderElector", "LeaderLease", "LockLost", "LockTimeout", "RedisGateway",
    "RedisUnavailable", "ShardBalancer", "ShardMap", "compute_shard_map", "coordination_config",
    "coordination_status", "gateway_from_settings", "owner_of", "read_shard_map", "redact_url",
    "rendezvous_assign", "write_shard_map",
]

