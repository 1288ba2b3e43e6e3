"""What a run would do to each task, decided on the client before anything is submitted.

Every task is skipped (by ``when``, here or upstream), carried over from the execution being
resumed, served from a shared cache, loaded from the cache because a task that runs needs its
output, or run. :func:`plan_run` computes the cache keys and this decision; the executor acts
on it and ``mlw plan`` (``plan_status``) displays it. Nothing here submits or writes anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from mlflowdsl.errors import RuntimeFailure
from mlflowdsl.ir import DependencyCycle, Plan, Task, UnknownDependency
from mlflowdsl.runtime.cache import open_cache
from mlflowdsl.runtime.keyparts import plan_components
from mlflowdsl.runtime.keys import tuned_key_parts
from mlflowdsl.runtime.records import WorkflowExecution
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

CARRIED_STATUSES = ("succeeded", "cached")  # a resumed execution's tasks kept when their key is unchanged

Contains = Callable[[str, str], bool]  # contains(strategy, key): is the entry in that shared cache?
# A probe may also have ``verify(strategy, key)``: the entry is there and its signature holds
# (read whole, not unpickled; a bad one is deleted). Planning verifies the entries it will
# *load* (a cached task whose output a running task needs), so a corrupt or forged one is
# recomputed in the same run instead of failing it; a plain ``contains`` is used for the rest.


@dataclass
class Decision:
    """What the client decided for each task before submitting."""

    keys: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)  # task id -> why
    cached: set[str] = field(default_factory=set)  # hits in a shared cache (not submitted)
    carried: set[str] = field(default_factory=set)  # finished in the resumed execution
    load: set[str] = field(default_factory=set)  # cached, but a running task needs the output
    run: list[str] = field(default_factory=list)  # topological order
    components: dict[str, dict] = field(default_factory=dict)  # task id -> its key's parts (keyparts.py)
    order: list[Task] = field(default_factory=list)  # every task, dependencies first


def topological(plan: Plan) -> list[Task]:
    """The plan's tasks, dependencies first (ties by id: ``ir.topological_order``); a cycle or
    an unknown dependency is a broken plan, not a user mistake the compiler would have let
    through."""
    hint = "recompile the plan with `mlw compile`"
    cycle = RuntimeFailure("the plan has a dependency cycle", hint=hint)
    try:
        order = plan.topological_tasks()
    except UnknownDependency as exc:
        raise RuntimeFailure(str(exc), hint=hint) from None
    except DependencyCycle:
        raise cycle from None
    if len(order) != len(plan.tasks):  # two tasks with one id: one of them would never run
        raise cycle
    return order


def task_keys(plan: Plan, base_dir: str, fingerprint: Callable[[str], str] | None = None,
              ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Every task's full cache key and its components, as a run computes them (a tuned
    task's key also covers its ``tune`` block); ``fingerprint``: ``datafp.Fingerprinter``."""
    return plan_components(tuned_key_parts(plan), base_dir, fingerprint)


def decide(plan: Plan, order: list[Task], keys: dict[str, str], resume: WorkflowExecution | None,
           contains: Contains) -> Decision:
    """The decision over the plan (``order``: :func:`topological`), the shared caches and the
    execution being resumed."""
    d = Decision(keys=keys, order=order)
    previous = resume.tasks if resume else {}
    for task in order:
        upstream_skip = next((dep for dep in task.dependencies if dep in d.skipped), None)
        if task.skip:
            d.skipped[task.id] = "`when` is false"
        elif upstream_skip:
            d.skipped[task.id] = f"upstream task {upstream_skip!r} skipped"
        elif previous.get(task.id) is not None and previous[task.id].status in CARRIED_STATUSES \
                and previous[task.id].cache_key == keys[task.id]:
            d.carried.add(task.id)
        elif task.cache.shared and contains(task.cache.strategy, keys[task.id]):
            d.cached.add(task.id)
        else:
            d.run.append(task.id)
    # Walk back from what runs: a needed carried-over task is loaded from the shared cache
    # when it is there, and rerun otherwise (its outputs died with the old workers).
    # The entries to load are verified, so a corrupt one is rerun rather than failing the load.
    verify = getattr(contains, "verify", contains)
    by_id = plan.tasks_by_id()
    needed = {dep for tid in d.run for dep in by_id[tid].dependencies}
    run = set(d.run)
    for task in reversed(order):
        if task.id not in needed or task.id in run:
            continue
        if task.cache.shared and verify(task.cache.strategy, keys[task.id]):
            d.load.add(task.id)
        else:
            d.cached.discard(task.id)
            d.carried.discard(task.id)
            run.add(task.id)
            needed.update(by_id[task.id].dependencies)
    d.run = [t.id for t in order if t.id in run]
    return d


def plan_run(plan: Plan, base_dir: str, resume: WorkflowExecution | None, contains: Contains,
             fingerprint: Callable[[str], str] | None = None) -> Decision:
    """Order, keys (with their components) and the decision for every task of ``plan``."""
    order = topological(plan)
    keys, components = task_keys(plan, base_dir, fingerprint)
    decision = decide(plan, order, keys, resume, contains)
    decision.components = components
    return decision


class CacheProbe:
    """``probe(strategy, key)`` (header-only ``contains``) and ``probe.verify(strategy, key)``
    (the entry's signature checked) over the real caches, each opened once. With
    ``errors_are_misses`` a cache that cannot be opened or asked (no Redis configured, a
    server down) answers "not there" instead of raising."""

    def __init__(self, settings: Settings, *, errors_are_misses: bool = False):
        self.settings = settings
        self.errors_are_misses = errors_are_misses
        self._opened: dict[str, Any] = {}

    def _ask(self, what: str, strategy: str, key: str) -> bool:
        try:
            if strategy not in self._opened:
                self._opened[strategy] = open_cache(strategy, self.settings)
            return bool(getattr(self._opened[strategy], what)(key))
        except Exception as exc:  # noqa: BLE001 - an unreachable cache is a miss, as at run time
            if not self.errors_are_misses:
                raise
            log.debug("cache %s could not be asked for %s, counted as a miss: %s", strategy, key[:12], exc)
            return False

    def __call__(self, strategy: str, key: str) -> bool:
        return self._ask("contains", strategy, key)

    def verify(self, strategy: str, key: str) -> bool:
        return self._ask("verify", strategy, key)


def cache_probe(settings: Settings, *, errors_are_misses: bool = False) -> CacheProbe:
    return CacheProbe(settings, errors_are_misses=errors_are_misses)
