"""Rendezvous hashing of capability domains onto instances (pure functions, no Redis)."""

from __future__ import annotations

import doctest

import pytest

from mlflowdsl.runtime.coordination import shards
from mlflowdsl.runtime.coordination.instances import InstanceInfo
from mlflowdsl.runtime.coordination.shards import ShardMap, compute_shard_map, rendezvous_assign, rendezvous_weight

DOMAINS = [f"domain-{i}" for i in range(2000)]


def test_doctests():
    assert doctest.testmod(shards).failed == 0


def test_weight_is_stable_across_runs():
    # A fixed value: the weight must not depend on PYTHONHASHSEED or the machine.
    import hashlib

    expected = int.from_bytes(hashlib.blake2b(b"training|orch-a", digest_size=8).digest(), "big")
    assert rendezvous_weight("training", "orch-a") == expected
    assert rendezvous_weight("training", "orch-a") != rendezvous_weight("training", "orch-b")


def test_assignment_does_not_depend_on_order():
    ids = [f"orch-{i}" for i in range(5)]
    assert rendezvous_assign(DOMAINS, ids) == rendezvous_assign(list(reversed(DOMAINS)), list(reversed(ids)))


def test_spread_is_roughly_even():
    ids = [f"orch-{i}" for i in range(4)]
    counts = {i: 0 for i in ids}
    for owner in rendezvous_assign(DOMAINS, ids).values():
        counts[owner] += 1
    assert all(350 <= c <= 650 for c in counts.values()), counts  # 500 each expected


@pytest.mark.parametrize("n", [2, 4, 8])
def test_adding_an_instance_moves_only_about_one_nth(n):
    ids = [f"orch-{i}" for i in range(n)]
    before = rendezvous_assign(DOMAINS, ids)
    after = rendezvous_assign(DOMAINS, ids + ["orch-new"])
    moved = [d for d in DOMAINS if before[d] != after[d]]
    # Every moved domain went to the newcomer (nothing shuffles between old instances) ...
    assert all(after[d] == "orch-new" for d in moved)
    # ... and about 1/(n+1) of them moved.
    share = len(moved) / len(DOMAINS)
    assert abs(share - 1 / (n + 1)) < 0.05, share


def test_removing_an_instance_moves_only_its_domains():
    ids = [f"orch-{i}" for i in range(5)]
    before = rendezvous_assign(DOMAINS, ids)
    after = rendezvous_assign(DOMAINS, [i for i in ids if i != "orch-2"])
    for domain in DOMAINS:
        if before[domain] != "orch-2":
            assert after[domain] == before[domain]
        else:
            assert after[domain] != "orch-2"


def test_only_eligible_instances_get_a_domain():
    instances = {"gpu-1": ["training"], "gpu-2": ["training", "inference"], "any": ["*"], "cpu": ["rag"]}
    for _ in range(3):
        got = rendezvous_assign(["training", "inference", "rag", "etl"], instances)
        assert got["training"] in {"gpu-1", "gpu-2", "any"}
        assert got["inference"] in {"gpu-2", "any"}
        assert got["rag"] in {"cpu", "any"}
        assert got["etl"] == "any"


def test_domain_without_eligible_instance_is_left_out():
    assert rendezvous_assign(["rag", "training"], {"a": ["training"]}) == {"training": "a"}
    assert rendezvous_assign(["rag"], {}) == {}


def test_no_declared_domains_means_every_domain():
    assert rendezvous_assign(["etl"], {"a": []}) == {"etl": "a"}


def test_compute_shard_map_includes_declared_and_requested_domains():
    live = [InstanceInfo("b", ("training",)), InstanceInfo("a", ("*",))]
    shard_map = compute_shard_map(7, live, domains=["inference"])
    assert shard_map.epoch == 7
    assert shard_map.instances == ("a", "b")
    assert set(shard_map.assignments) == {"training", "inference"}
    assert shard_map.owner_of("inference") == "a"  # the only eligible one
    assert ShardMap.from_json(shard_map.to_json()) == shard_map
    assert shard_map.owner_of("unknown") is None
