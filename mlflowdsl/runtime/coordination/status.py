"""A snapshot of the coordination state for ``mlw cluster status`` (instances, leader, shards,
breaker). Queue depth and dead letters belong to the submission stream and are added by it."""

from __future__ import annotations

from typing import Any

from mlflowdsl.runtime.coordination.gateway import RedisGateway
from mlflowdsl.runtime.coordination.instances import InstanceRegistry
from mlflowdsl.runtime.coordination.shards import read_shard_map


def coordination_status(gateway: RedisGateway, *, beat_s: float = 1.0) -> dict[str, Any]:
    """A JSON-ready dict: ``instances`` (id, domains, host, pid, load, last_heartbeat),
    ``leader`` (id and epoch, or None), ``epoch`` (the fencing-token counter), ``shards``
    (the stored map) and ``breaker`` (this process's breaker state for the Redis URL)."""
    registry = InstanceRegistry(gateway, beat_s=beat_s)
    instances = [
        {"id": i.id, "domains": list(i.domains), "host": i.host, "pid": i.pid, "load": i.load,
         "started": i.started, "last_heartbeat": i.last_heartbeat}
        for i in registry.live(prune=False)  # status is read-only (works with a read-only ACL user)
    ]
    raw_leader, raw_epoch = gateway.call(lambda r: r.mget([gateway.key("leader"), gateway.key("leader", "epoch")]))
    leader = None
    if raw_leader is not None:
        holder, _, epoch = raw_leader.decode().rpartition(":")
        leader = {"id": holder, "epoch": int(epoch)}
    shard_map = read_shard_map(gateway)
    return {
        "redis": gateway.safe_url,
        "prefix": gateway.prefix,
        "breaker": gateway.breaker_state,
        "instances": instances,
        "leader": leader,
        "epoch": int(raw_epoch) if raw_epoch is not None else 0,
        "shards": None if shard_map is None else {"epoch": shard_map.epoch, "assignments": shard_map.assignments},
    }
