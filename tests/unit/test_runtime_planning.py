"""The executor's client-side planning, as pure functions: cache keys, decisions, resources."""

from __future__ import annotations

import pytest

from key_helpers import plan_keys
from mlflowdsl.errors import RuntimeFailure
from mlflowdsl.ir import CachePolicy, Plan, Resources, SourceSpan, Task, Workflow, key_part
from mlflowdsl.runtime import resources as res
from mlflowdsl.runtime.keys import data_fingerprints
from mlflowdsl.runtime.planning import decide, topological
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution


def T(id, deps=(), *, strategy="disk", skip=False, type="custom", params=None, **kw):
    params = params or {"x": id}
    return Task(id=id, type=type, uses="m:f" if type == "custom" else None, dependencies=sorted(deps),
                params=params, cache=CachePolicy(strategy=strategy), skip=skip,
                key_part=key_part(type, "1", "m:f", params, ""), **kw)


def P(*tasks):
    return Plan(workflow=Workflow(id="w"), tasks=list(tasks))


DIAMOND = P(T("a"), T("b", ["a"]), T("c", ["a"]), T("d", ["b", "c"]), T("e"))


def test_changing_one_task_changes_exactly_its_key_and_its_dependents_keys():
    before = plan_keys(DIAMOND, ".")
    edited = P(T("a"), T("b", ["a"], params={"x": "changed"}), T("c", ["a"]), T("d", ["b", "c"]), T("e"))
    after = plan_keys(edited, ".")
    assert {t for t in before if before[t] != after[t]} == {"b", "d"}


def test_keys_do_not_depend_on_the_workflow():
    other = Plan(workflow=Workflow(id="another"), tasks=DIAMOND.tasks)
    assert plan_keys(other, ".") == plan_keys(DIAMOND, ".")


def test_files_named_by_reads_params_are_fingerprinted_relative_to_the_workflow(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    task = T("prep", type="data_preprocessing", params={"source": "data.csv"})
    first = data_fingerprints(task, str(tmp_path))
    (tmp_path / "data.csv").write_text("a,b\n1,3\n")
    assert data_fingerprints(task, str(tmp_path)) != first and len(first) == 1
    bundled = T("prep", type="data_preprocessing", params={"source": "sklearn:iris"})
    assert data_fingerprints(bundled, str(tmp_path)) == []


def test_decide_serves_shared_hits_and_loads_only_what_running_tasks_need():
    keys = plan_keys(DIAMOND, ".")
    cached = {keys["a"], keys["b"], keys["e"]}
    d = decide(DIAMOND, topological(DIAMOND), keys, None, lambda strategy, key: key in cached)
    assert d.run == ["c", "d"]
    assert d.cached == {"a", "b", "e"}
    assert d.load == {"a", "b"}  # c needs a, d needs b; e is needed by nobody


def test_memory_strategy_is_never_answered_on_the_client():
    plan = P(T("a", strategy="memory"))
    d = decide(plan, topological(plan), plan_keys(plan, "."), None, lambda s, k: True)
    assert d.run == ["a"] and not d.cached


def test_skips_propagate_to_dependents():
    plan = P(T("a", skip=True), T("b", ["a"]), T("c"))
    d = decide(plan, topological(plan), plan_keys(plan, "."), None, lambda s, k: False)
    assert set(d.skipped) == {"a", "b"} and d.run == ["c"]
    assert "upstream task 'a'" in d.skipped["b"]


def test_resume_keeps_successes_and_reruns_an_uncached_one_that_is_needed():
    plan = P(T("a", strategy="none"), T("b", ["a"]), T("c"))
    keys = plan_keys(plan, ".")
    previous = WorkflowExecution(id="x", workflow_id="w", tasks={
        "a": TaskResult(task_id="a", status="succeeded", cache_key=keys["a"]),
        "b": TaskResult(task_id="b", status="failed", cache_key=keys["b"]),
        "c": TaskResult(task_id="c", status="succeeded", cache_key=keys["c"]),
    })
    d = decide(plan, topological(plan), keys, previous, lambda s, k: False)
    # b must run; a's output was never cached (strategy none), so a runs again too
    assert d.run == ["a", "b"] and d.carried == {"c"}


def test_topological_order_and_broken_plans():
    shuffled = P(T("d", ["b", "c"]), T("c", ["a"]), T("b", ["a"]), T("a"))
    assert [t.id for t in topological(shuffled)] == ["a", "b", "c", "d"]
    with pytest.raises(RuntimeFailure, match="unknown"):
        topological(P(T("a", ["ghost"])))
    with pytest.raises(RuntimeFailure, match="cycle"):
        topological(P(T("a", ["b"]), T("b", ["a"])))


WORKERS = {"tcp://w1": {"CPU": 2.0, "MEMORY": 4e9, "domain:training": 1.0},
           "tcp://w2": {"CPU": 8.0, "MEMORY": 1e9}}


def _task(resources, domain="default", line=4):
    return T("t", resources=resources, domain=domain,
             span=SourceSpan(file="p.mlw", line=line, column=3, end_line=line, end_column=9))


def test_requirements_map_only_declared_resources_except_gpu():
    declared = res.declared_names(WORKERS)
    assert res.requirements(_task(Resources(cpu=2, memory=10)), declared) == {"CPU": 2.0, "MEMORY": 10.0}
    assert res.requirements(_task(Resources(gpu=1)), set()) == {"GPU": 1.0}  # CPU undeclared: not asked
    assert res.requirements(_task(Resources(), domain="training"), declared)["domain:training"] == 1.0
    assert "domain:training" not in res.requirements(_task(Resources(), domain="training"), {"CPU"})


def test_a_request_must_fit_one_worker_not_the_sum():
    # 8 CPUs exist (w2) and 4 GB exist (w1), but no single worker has both
    problems = res.unsatisfiable([_task(Resources(cpu=8, memory=2 * 10**9))], WORKERS)
    assert len(problems) == 1 and problems[0].startswith("p.mlw:4:3: task `t` needs cpu=8")
    assert res.unsatisfiable([_task(Resources(cpu=2, memory=2 * 10**9))], WORKERS) == []


def test_unknown_domains_and_gpus_are_refused():
    assert "domain=rag" in res.unsatisfiable([_task(Resources(), domain="rag")], WORKERS)[0]
    assert "gpu=1" in res.unsatisfiable([_task(Resources(gpu=1))], WORKERS)[0]
    assert res.unsatisfiable([_task(Resources(gpu=1))], {}) != []  # no workers at all
