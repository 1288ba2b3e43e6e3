"""Cluster coordination on Redis: one gateway for every call (retries, circuit breaker), a
fenced leader lease, token-owned locks, instance heartbeats and shards by capability domain.

Typical instance wiring (what ``mlw orchestrator start`` builds on)::

    gw = gateway_from_settings(settings)
    registry = InstanceRegistry(gw, beat_s=1.0)
    Heartbeat(registry, InstanceInfo("orch-a", ("training",))).start()
    lease = LeaderLease(gw, "orch-a", lease_s=3.0, renew_s=1.0)
    balancer = ShardBalancer(lease, registry)
    LeaderElector(lease, on_elected=lambda epoch: balancer.rebalance(force=True)).start()
    # ... every tick, if lease.is_leader: balancer.rebalance()
    # ... dispatch only executions whose domain: owner_of(gw, domain) == "orch-a"
"""

from __future__ import annotations

from typing import Any

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
    "BackoffPolicy", "DistributedLock", "FencingRejected", "Heartbeat", "InstanceInfo", "InstanceRegistry",
    "LeaderElector", "LeaderLease", "LockLost", "LockTimeout", "RedisGateway", "RedisUnavailable", "ShardBalancer",
    "ShardMap", "compute_shard_map", "coordination_status", "gateway_from_settings", "owner_of", "read_shard_map",
    "redact_url", "rendezvous_assign", "write_shard_map",
]


def gateway_from_settings(settings: Any, **overrides: Any) -> RedisGateway:
    """A gateway for ``settings.redis_url`` under ``settings.key_prefix``."""
    from mlflowdsl.errors import ConfigError

    if not getattr(settings, "redis_url", None):
        raise ConfigError("no Redis URL configured", subject="redis_url",
                          hint="pass --redis URL or set MLW_REDIS_URL (redis://host:6379/0)")
    return RedisGateway(settings.redis_url, prefix=getattr(settings, "key_prefix", "mlw") or "mlw", **overrides)
