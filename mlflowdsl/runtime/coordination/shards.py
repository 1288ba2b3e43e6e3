"""Shards by capability domain: which live instance dispatches the executions of a domain.

The leader computes the map with rendezvous (highest-random-weight) hashing: each domain goes
to the eligible instance with the largest ``hash(domain|instance)``. Eligible = the instance
declares the domain, ``*`` or no domains at all. When an instance joins, it takes over only
the domains for which it now has the highest weight (about ``1/n`` of them); when one leaves,
only its own domains move. The map is written with the leader's epoch through a fenced write
(and under the ``shard-map`` lock), so a deposed leader cannot overwrite a newer map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from mlflowdsl.runtime.coordination.gateway import RedisGateway
from mlflowdsl.runtime.coordination.instances import InstanceInfo, InstanceRegistry
from mlflowdsl.runtime.coordination.leader import LeaderLease
from mlflowdsl.runtime.coordination.locks import DistributedLock

WILDCARD = "*"


def rendezvous_weight(domain: str, instance_id: str) -> int:
    """A stable 64-bit weight (blake2b of ``domain|instance``): the same on every machine and
    Python run, unlike ``hash()``."""
    digest = hashlib.blake2b(f"{domain}|{instance_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def eligible(domains: Iterable[str] | None, domain: str) -> bool:
    """Whether an instance declaring ``domains`` (none, or ``*``: every domain) may serve ``domain``."""
    declared = tuple(domains or ())
    return not declared or WILDCARD in declared or domain in declared


def rendezvous_assign(domains: Iterable[str],
                      instances: Mapping[str, Iterable[str]] | Iterable[str]) -> dict[str, str]:
    """Map each domain to one eligible instance by highest random weight.

    ``instances``: ids (all eligible for everything) or ``{id: declared domains}``. Domains no
    instance is eligible for are left out of the result.

    >>> rendezvous_assign(["training", "rag"], {"a": ["training"], "b": ["training"]})
    {'training': 'a'}
    >>> sorted(rendezvous_assign(["x", "y", "z"], ["a"]).values())
    ['a', 'a', 'a']
    """
    declared: Mapping[str, Iterable[str]] = (
        instances if isinstance(instances, Mapping) else {i: () for i in instances})
    assignment: dict[str, str] = {}
    for domain in sorted(set(domains)):
        candidates = [i for i, doms in declared.items() if eligible(doms, domain)]
        if candidates:
            # The id breaks (astronomically unlikely) weight ties deterministically.
            assignment[domain] = max(candidates, key=lambda i: (rendezvous_weight(domain, i), i))
    return assignment


@dataclass(frozen=True)
class ShardMap:
    """The domain -> instance map and the leader epoch that wrote it."""

    epoch: int
    assignments: dict[str, str] = field(default_factory=dict)
    instances: tuple[str, ...] = ()  # the live set it was computed from
    unassigned: tuple[str, ...] = ()  # known domains no live instance serves (remembered, not dropped)

    @property
    def domains(self) -> set[str]:
        return set(self.assignments) | set(self.unassigned)

    def owner_of(self, domain: str) -> str | None:
        return self.assignments.get(domain)

    def domains_of(self, instance_id: str) -> list[str]:
        return sorted(d for d, owner in self.assignments.items() if owner == instance_id)

    def to_json(self) -> str:
        return json.dumps({"epoch": self.epoch, "assignments": self.assignments,
                           "instances": list(self.instances), "unassigned": list(self.unassigned)}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "ShardMap":
        data = json.loads(raw)
        return cls(epoch=int(data["epoch"]), assignments=dict(data.get("assignments") or {}),
                   instances=tuple(data.get("instances") or ()), unassigned=tuple(data.get("unassigned") or ()))


def shard_map_key(gateway: RedisGateway) -> str:
    return gateway.key("shards")


def read_shard_map(gateway: RedisGateway) -> ShardMap | None:
    raw = gateway.call(lambda r: r.get(shard_map_key(gateway)))
    return ShardMap.from_json(raw) if raw is not None else None


def owner_of(gateway: RedisGateway, domain: str) -> str | None:
    """The instance that dispatches ``domain`` according to the stored map (None: unassigned)."""
    shard_map = read_shard_map(gateway)
    return shard_map.owner_of(domain) if shard_map else None


def compute_shard_map(epoch: int, live: Iterable[InstanceInfo], domains: Iterable[str] = ()) -> ShardMap:
    """The map for ``live`` instances: every explicitly declared domain plus ``domains`` (e.g.
    the domains of submitted tasks, which wildcard instances serve)."""
    live = sorted(live, key=lambda info: info.id)
    wanted = set(domains) | {d for info in live for d in info.domains if d != WILDCARD}
    assignment = rendezvous_assign(wanted, {info.id: info.domains for info in live})
    return ShardMap(epoch=epoch, assignments=assignment, instances=tuple(info.id for info in live),
                    unassigned=tuple(sorted(wanted - set(assignment))))


def write_shard_map(lease: LeaderLease, shard_map: ShardMap, *, lock_ttl_s: float = 5.0) -> bool:
    """Store ``shard_map`` with a fenced write under the ``shard-map`` lock; False when a newer
    leader exists (the write is rejected and nothing changes)."""
    gateway = lease.gateway
    with DistributedLock(gateway, "shard-map", ttl_s=lock_ttl_s, timeout_s=lock_ttl_s):
        return lease.fenced_set(shard_map_key(gateway), shard_map.to_json(), epoch=shard_map.epoch)


class ShardBalancer:
    """What the leader runs on every tick: recompute the map when the live set (or the known
    domains) changed, and write it with its epoch."""

    def __init__(self, lease: LeaderLease, registry: InstanceRegistry, domains: Iterable[str] = ()):
        self.lease = lease
        self.registry = registry
        self.domains = set(domains)

    def rebalance(self, *, force: bool = False) -> ShardMap | None:
        """Returns the new map if one was written, else None (unchanged, not leader, rejected)."""
        epoch = self.lease.epoch
        if epoch is None or not self.lease.is_leader:
            return None
        current = read_shard_map(self.lease.gateway)
        # Domains once known stay known: when their last instance leaves they must move (to a
        # wildcard instance) or be listed as unassigned, never silently vanish.
        known = self.domains | (current.domains if current else set())
        proposed = compute_shard_map(epoch, self.registry.live(), known)
        if (not force and current is not None and current.epoch == epoch
                and current.assignments == proposed.assignments and current.instances == proposed.instances
                and current.unassigned == proposed.unassigned):
            return None
        return proposed if write_shard_map(self.lease, proposed) else None
