"""RedisState against a real Redis: compare-and-set writes, first commit wins, reads."""

from __future__ import annotations

import time

import pytest

from mlflowdsl.errors import StateError
from mlflowdsl.runtime.coordination.gateway import RedisGateway
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.redis import RedisState


@pytest.fixture
def state(redis_url):
    s = RedisState(RedisGateway(redis_url, prefix="t"))
    yield s
    s.gateway.close()


def _execution(id="abc123", status="pending", **kw) -> WorkflowExecution:
    return WorkflowExecution(id=id, workflow_id="wf", status=status, plan_json='{"tasks": [{"id": "b"}, {"id": "a"}]}',
                             **kw)


def test_roundtrip_keeps_plan_order_and_header(state):
    state.save_execution(_execution())
    state.save_task_results("abc123", [TaskResult(task_id="a"), TaskResult(task_id="b", status="running")])
    got = state.get_execution("abc")  # a unique prefix
    assert got.id == "abc123" and got.status == "pending"
    assert list(got.tasks) == ["b", "a"]
    assert got.tasks["b"].status == "running"


def test_task_statuses_never_go_backwards_and_first_commit_wins(state):
    state.save_execution(_execution())
    assert state.commit_task_results("abc123", [TaskResult(task_id="a", status="running")]) == [True]
    assert state.commit_task_results("abc123", [TaskResult(task_id="a", status="pending")]) == [False]
    first = TaskResult(task_id="a", status="succeeded", metrics={"acc": 0.9})
    assert state.commit_task_results("abc123", [first]) == [True]
    second = TaskResult(task_id="a", status="failed", error="late")
    again = TaskResult(task_id="a", status="succeeded", metrics={"acc": 0.1})
    assert state.commit_task_results("abc123", [second, again]) == [False, False]
    assert state.get_execution("abc123").tasks["a"] == first


def test_execution_status_is_monotonic_and_final(state):
    state.save_execution(_execution(status="running"))
    assert not state.save_execution_checked(_execution(status="pending"))
    assert state.save_execution_checked(_execution(status="running", error=None, params={"x": 1}))
    assert state.save_execution_checked(_execution(status="succeeded"))
    assert not state.save_execution_checked(_execution(status="running"))
    assert not state.save_execution_checked(_execution(status="failed"))
    assert state.get_execution("abc123").status == "succeeded"


def test_unknown_and_ambiguous_ids_are_clear_errors(state):
    state.save_execution(_execution(id="aa11"))
    state.save_execution(_execution(id="aa22"))
    with pytest.raises(StateError, match="no execution 'zz'"):
        state.get_execution("zz")
    with pytest.raises(StateError, match="ambiguous"):
        state.get_execution("aa")


def test_list_is_newest_first_and_filters(state):
    state.save_execution(_execution(id="old", created=1.0))
    state.save_execution(_execution(id="new", created=2.0))
    other = WorkflowExecution(id="other", workflow_id="other-wf", created=3.0)
    state.save_execution(other)
    assert [e.id for e in state.list_executions()] == ["other", "new", "old"]
    assert [e.id for e in state.list_executions(workflow_id="wf", limit=1)] == ["new"]
    assert state.list_executions()[0].tasks == {}


def test_computed_results_name_the_run_that_computed_a_key(state):
    state.save_execution(_execution())
    state.save_task_results("abc123", [TaskResult(task_id="a", status="succeeded", cache_key="k1",
                                                  metrics={"m": 1.0})])
    found = state.computed_results(["k1", "k2"])
    assert set(found) == {"k1"} and found["k1"].metrics == {"m": 1.0}


def test_writes_during_an_outage_are_buffered_and_flushed(redis_server, redis_url):
    state = RedisState(RedisGateway(redis_url, prefix="t", socket_timeout=0.2, breaker_reset_s=0.2))
    state.save_execution(_execution(status="running"))
    redis_server.stop()
    try:
        state.save_task_results("abc123", [TaskResult(task_id="a", status="running")])
        state.save_task_results("abc123", [TaskResult(task_id="a", status="succeeded")])
        state.save_task_results("abc123", [TaskResult(task_id="a", status="running")])  # stale: must not win
        assert state.unsaved == 1
    finally:
        redis_server.start()
    # the test server restarts empty: the header is written again by the run's end
    state.save_execution(_execution(status="succeeded"))
    deadline = time.monotonic() + 5
    while not state.flush_pending():  # the breaker lets a trial call through after its reset time
        assert time.monotonic() < deadline, "buffered writes never reached Redis"
        time.sleep(0.1)
    got = state.get_execution("abc123")
    assert got.tasks["a"].status == "succeeded" and got.status == "succeeded"
    state.gateway.close()


def test_module_examples_hold():
    import doctest

    import mlflowdsl.runtime.cluster_mode.submission as submission
    import mlflowdsl.runtime.state.redis as redis_state
    import mlflowdsl.sdk.spec as spec

    for module in (redis_state, submission, spec):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__


def test_the_shard_of_an_execution_is_its_most_common_domain():
    from mlflowdsl.ir import Plan, Task, Workflow
    from mlflowdsl.runtime.cluster_mode.submission import execution_domain

    def plan(*domains):
        return Plan(workflow=Workflow(id="w"), tasks=[Task(id=f"t{i}", type="custom", domain=d)
                                                      for i, d in enumerate(domains)])

    assert execution_domain(plan()) == "default"
    assert execution_domain(plan("training", "inference")) == "inference"  # a tie: alphabetical
    assert execution_domain(plan("default", "rag", "rag")) == "rag"
