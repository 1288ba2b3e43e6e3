"""A plan's cache keys computed the plain way, to check ``keyparts.plan_components`` (what the
executor uses) against."""

from __future__ import annotations

from mlflowdsl.ir import Plan
from mlflowdsl.runtime.cache.base import cache_key
from mlflowdsl.runtime.keys import data_fingerprints, file_fingerprint


def plan_keys(plan: Plan, base_dir: str) -> dict[str, str]:
    """Task id -> full cache key, for every task (tasks are in topological order)."""
    keys: dict[str, str] = {}
    cache: dict[str, str] = {}

    def cached_fingerprint(path: str) -> str:
        if path not in cache:
            cache[path] = file_fingerprint(path)
        return cache[path]

    for task in plan.tasks:
        keys[task.id] = cache_key(task.key_part, [keys[d] for d in task.dependencies],
                                  data_fingerprints(task, base_dir, cached_fingerprint))
    return keys
