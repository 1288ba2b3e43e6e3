"""The pieces of execution fencing against a real Redis: fenced state writes, the worker's
start and side-effect checks, the hand-over that waits for a previous owner's attempts, and
the registry and batch-output checks a task's side effects go through."""

from __future__ import annotations

import threading
import time

import pytest

from mlflowdsl.runtime.coordination import ownership
from mlflowdsl.runtime.coordination.gateway import RedisGateway
from mlflowdsl.runtime.coordination.ownership import AttemptGuard
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.registry.services import RegistryServices
from mlflowdsl.runtime.state.redis import RedisState
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskContext, TaskFailed

pytestmark = pytest.mark.integration

ALIVE = {"tcp://w1"}


@pytest.fixture
def gateway(redis_url):
    gw = RedisGateway(redis_url, prefix="mlw")
    yield gw
    gw.close()


def _execution(id="e1") -> WorkflowExecution:
    return WorkflowExecution(id=id, workflow_id="wf", status="running", plan_json='{"tasks": [{"id": "a"}]}')


def test_writes_of_a_superseded_owner_are_rejected_and_nothing_lands(gateway):
    old, new = RedisState(gateway), RedisState(gateway)
    old.save_execution_checked(_execution())
    first, _ = ownership.claim(gateway, "e1", lambda: ALIVE)
    old.fence("e1", first.token)
    assert old.commit_task_results("e1", [TaskResult(task_id="a", status="running")]) == [True]
    second, _ = ownership.claim(gateway, "e1", lambda: ALIVE)
    assert second.token == first.token + 1
    new.fence("e1", second.token)
    assert old.commit_task_results("e1", [TaskResult(task_id="a", status="succeeded", metrics={"x": 1.0})]) == [False]
    assert old.fenced_out("e1") and not new.fenced_out("e1")
    assert not old.save_execution_checked(_execution().advance("succeeded"))
    stored = new.get_execution("e1")
    assert stored.status == "running" and stored.tasks["a"].status == "running"  # nothing of the old owner's
    assert new.commit_task_results("e1", [TaskResult(task_id="a", status="succeeded")]) == [True]
    assert new.save_execution_checked(_execution().advance("succeeded"))


def test_attempts_start_only_under_the_current_token_and_not_during_a_take_over(redis_url, gateway):
    settings = Settings(redis_url=redis_url)
    fence, _ = ownership.claim(gateway, "e2", lambda: ALIVE)
    guard = AttemptGuard(settings, fence, "a", "tcp://w1")
    assert guard.start() and guard.still_owner()
    assert [a.task_id for a in ownership.attempts_in_flight(gateway, "e2")] == ["a"]
    guard.end()
    assert ownership.attempts_in_flight(gateway, "e2") == []
    gateway.call(lambda r: r.set(fence.draining_key, "1"))  # a take-over has begun
    assert not AttemptGuard(settings, fence, "b", "tcp://w1").start()
    assert guard.still_owner()  # an attempt already running may still make its effect
    newer, _ = ownership.claim(gateway, "e2", lambda: ALIVE)
    assert not guard.still_owner() and not AttemptGuard(settings, fence, "b", "tcp://w1").start()
    assert AttemptGuard(settings, newer, "b", "tcp://w1").start()


def test_a_take_over_waits_for_the_previous_owners_attempts_unless_their_worker_is_gone(redis_url, gateway):
    settings = Settings(redis_url=redis_url)
    fence, _ = ownership.claim(gateway, "e3", lambda: ALIVE)
    running = AttemptGuard(settings, fence, "slow", "tcp://w1")
    assert running.start()
    threading.Timer(0.6, running.end).start()
    began = time.monotonic()
    newer, waited = ownership.claim(gateway, "e3", lambda: ALIVE, poll_s=0.05)
    assert waited == ["slow"] and time.monotonic() - began >= 0.5 and newer.token == fence.token + 1
    orphan = AttemptGuard(settings, newer, "lost", "tcp://dead-worker")
    assert orphan.start()
    began = time.monotonic()
    _, waited = ownership.claim(gateway, "e3", lambda: ALIVE)
    assert waited == [] and time.monotonic() - began < 0.5  # its worker is gone: nothing to wait for
    assert ownership.attempts_in_flight(gateway, "e3") == []


def test_side_effects_check_ownership_first(tmp_path):
    owner = {"ours": True}
    services = RegistryServices(Settings(home=str(tmp_path / "home")), still_owner=lambda: owner["ours"])
    registry = services.open_registry()
    try:
        assert registry.register("m", {"weights": [1]}).version == 1
        owner["ours"] = False
        with pytest.raises(TaskFailed, match="newer owner") as caught:
            registry.register("m", {"weights": [2]})
        assert caught.value.retryable is False
        with pytest.raises(TaskFailed, match="deployment not made"):
            services.deploy(None, {}, name="m", registry=registry)
        assert [v.version for v in registry.versions("m")] == [1]
    finally:
        registry.close()
    ctx = TaskContext(task_id="t", execution_id="e", still_owner=lambda: False)
    assert not ctx.still_owner() and TaskContext().still_owner()
    with pytest.raises(TaskFailed, match="did not make the output"):
        ctx.check_owner("the output")
