"""`mlw plan`'s reasons, from plan_status over a hand-made history (no cluster needed)."""

from __future__ import annotations

from key_helpers import plan_keys
from mlflowdsl.ir import CachePolicy, Plan, Task, Workflow, key_part
from mlflowdsl.runtime.keyparts import plan_components
from mlflowdsl.runtime.plan_status import History, Previous, plan_status
from mlflowdsl.runtime.records import TaskResult


def _task(id, deps=(), *, impl="1", version="", ttl=None, skip=False, **params):
    t = Task(id=id, type="custom", uses="m:f", dependencies=sorted(deps), params=params, impl_version=impl,
             cache=CachePolicy(strategy="disk", version=version, ttl=ttl), skip=skip)
    return t.model_copy(update={"key_part": key_part("custom", impl, "m:f", params, version)})


def _plan(*tasks):
    return Plan(workflow=Workflow(id="w"), tasks=list(tasks))


def _history(plan, ended=1000.0):
    _, comps = plan_components(plan, ".")
    return History({tid: Previous("e1", TaskResult(task_id=tid, status="succeeded", ended=ended,
                                                    key_components=c, cache_key=c["key"]))
                    for tid, c in comps.items()})


def _reasons(rows):
    return {r.task_id: (r.status, r.reasons) for r in rows}


def test_components_give_the_same_keys_as_the_executor():
    plan = _plan(_task("a", x=1), _task("b", ["a"], y=2))
    assert plan_components(plan, ".")[0] == plan_keys(plan, ".")


def test_each_changed_component_has_its_reason():
    old = _plan(_task("a", x=1), _task("b", ["a"]), _task("c", ["b"]), _task("d"))
    new = _plan(_task("a", impl="2", x=1), _task("b", ["a"]), _task("c", ["b"], version="v2"), _task("d"))
    rows = plan_status(new, base_dir=".", contains=lambda s, k: False, history=_history(old), now=2000)
    got = _reasons(rows)
    assert got["a"] == ("will run", ("implementation version changed",))
    assert got["b"] == ("will run", ("input changed upstream (a)",))
    assert got["c"] == ("will run", ("cache version changed", "input changed upstream (b)"))
    assert got["d"][0] == "will run" and "evicted or cleared" in got["d"][1][0]


def test_ttl_expired_no_entry_cached_and_skipped():
    plan = _plan(_task("a", ttl=60.0), _task("b", ttl=3600.0), _task("c", skip=True), _task("d", ["c"]))
    history = _history(plan, ended=1000.0)
    del history.by_task["b"]
    keys = plan_keys(plan, ".")
    rows = plan_status(plan, base_dir=".", contains=lambda s, k: k == keys["d"], history=history, now=1100.0)
    got = _reasons(rows)
    assert got["a"] == ("will run", ("TTL expired (the entry is 100s old, its TTL 60s)",))
    assert got["b"] == ("will run", ("no entry",))
    assert got["c"] == ("skipped", ("`when` is false",))
    assert got["d"] == ("skipped", ("upstream task 'c' skipped",))  # skipped wins over a cache entry


def test_a_cache_hit_is_cached():
    plan = _plan(_task("a", x=1))
    rows = plan_status(plan, base_dir=".", contains=lambda s, k: True, history=History())
    assert [(r.task_id, r.status, r.reasons) for r in rows] == [("a", "cached", ())]


def test_a_cache_hit_does_not_renew_the_ttl():
    """The newest record is a hit (no end time of its own); the entry was written by the
    run before it, long enough ago for the TTL to have passed."""
    plan = _plan(_task("a", ttl=60.0))
    history = _history(plan, ended=1000.0)
    hit = history.by_task["a"].result.model_copy(update={"status": "cached", "ended": None, "cached": True})
    history.by_task["a"] = Previous("e2", hit)
    history.written[hit.cache_key] = 1000.0
    rows = plan_status(plan, base_dir=".", contains=lambda s, k: False, history=history, now=1070.0)
    assert rows[0].reasons == ("TTL expired (the entry is 70s old, its TTL 60s)",)


def test_doctests():
    import doctest

    import mlflowdsl.runtime.keyparts as keyparts
    import mlflowdsl.runtime.plan_status as plan_status_module

    for module in (keyparts, plan_status_module):
        result = doctest.testmod(module)
        assert result.failed == 0
    assert doctest.testmod(keyparts).attempted > 0


def test_a_tuned_task_names_the_tuning_change_and_otherwise_reruns_its_study():
    from mlflowdsl.ir import Objective, SearchDim, Tuning
    from mlflowdsl.runtime.plan_status import TUNED
    from mlflowdsl.runtime.keys import tuned_key_parts

    def tuned(trials):
        tuning = Tuning(task="a", search=[SearchDim(name="C", kind="float", low=0.1, high=1.0)],
                        objective=Objective(direction="maximize", metric="accuracy"), trials=trials)
        return Plan(workflow=Workflow(id="w"), tasks=[_task("a", C=1.0), _task("b", ["a"])], tunings=[tuning])

    history = _history(tuned_key_parts(tuned(5)))  # what the executor recorded
    keys = plan_components(tuned_key_parts(tuned(5)), ".")[0]
    same = plan_status(tuned(5), base_dir=".", contains=lambda s, k: k == keys["b"], history=history)
    assert _reasons(same) == {"a": ("will run", (TUNED,)), "b": ("cached", ())}
    more = plan_status(tuned(8), base_dir=".", contains=lambda s, k: False, history=history)
    assert _reasons(more) == {"a": ("will run", ("tuning changed (trials)",)),
                              "b": ("will run", ("input changed upstream (a)",))}
