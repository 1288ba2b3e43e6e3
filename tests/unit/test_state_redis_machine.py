"""A hypothesis state machine over submit/claim/start/complete/fail/kill/failover against a real
Redis: instances plan with the executor's own ``decide`` from the state in Redis, write through
``RedisState``, die, and leave zombies that keep writing. After every step, from Redis alone:
no status went backwards, no task runs or succeeded before its dependencies succeeded, and
every task's committed result is the first commit that was accepted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis as redis_py
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.coordination.gateway import RedisGateway  # noqa: E402
from mlflowdsl.runtime.planning import decide, topological  # noqa: E402
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution  # noqa: E402
from mlflowdsl.runtime.state.redis import RedisState, _rank  # noqa: E402
from tests.integration.runtime_helpers import plan, task  # noqa: E402

# a -> b, a -> c, (b, c) -> d, d -> e; f independent
PLAN = plan(task("a", "noop", cache="disk"), task("b", "noop", ["a"], cache="disk"),
            task("c", "noop", ["a"], cache="disk"), task("d", "noop", ["b", "c"], cache="disk"),
            task("e", "noop", ["d"]), task("f", "noop", cache="disk"))
ORDER = topological(PLAN)
DEPS = {t.id: set(t.dependencies) for t in PLAN.tasks}
KEYS = {t.id: f"key-{t.id}" for t in PLAN.tasks}
EXEC_ID = "e0"


class Instance:
    """What an owning instance holds in memory while it runs the execution."""

    def __init__(self, name: str, state: RedisState, shared_cache: set[str]):
        self.name = name
        self.state = state
        stored = state.get_execution(EXEC_ID)
        self.decision = decide(PLAN, ORDER, KEYS, stored,
                               lambda strategy, key: key in shared_cache)
        self.local: dict[str, TaskResult] = {}
        for t in PLAN.tasks:
            if t.id in self.decision.carried:
                self.local[t.id] = stored.tasks[t.id]
            elif t.id in self.decision.cached:
                self.local[t.id] = TaskResult(task_id=t.id, status="cached", cached=True, cache_key=KEYS[t.id])
            else:
                self.local[t.id] = TaskResult(task_id=t.id, cache_key=KEYS[t.id])
        state.save_execution(stored.advance("running"))
        state.save_task_results(EXEC_ID, self.local.values())

    def ready(self) -> list[str]:
        done = {t for t, r in self.local.items() if r.status in ("succeeded", "cached")}
        return [t for t in self.decision.run if self.local[t].status == "pending" and DEPS[t] <= done]

    def running(self) -> list[str]:
        return [t for t in self.decision.run if self.local[t].status == "running"]


class ClusterStateMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.state = RedisState(RedisGateway(REDIS_URL, prefix="sm"))
        raw = redis_py.Redis.from_url(REDIS_URL)
        keys = raw.keys("sm:*")
        if keys:
            raw.delete(*keys)
        raw.close()
        self.shared_cache: set[str] = set()
        self.owner: Instance | None = None
        self.zombies: list[Instance] = []
        self.submitted = False
        self.first_commit: dict[str, TaskResult] = {}
        self.seen_rank: dict[str, int] = {}
        self.counter = 0

    def teardown(self):
        self.state.gateway.close()

    def _finished(self) -> bool:
        return self.state.get_execution(EXEC_ID).finished

    def _write(self, inst: Instance, result: TaskResult) -> None:
        inst.local[result.task_id] = result
        accepted = inst.state.commit_task_results(EXEC_ID, [result])[0]
        if accepted and result.finished:
            assert result.task_id not in self.first_commit, f"{result.task_id} committed twice"
            self.first_commit[result.task_id] = result

    @precondition(lambda self: not self.submitted)
    @rule()
    def submit(self):
        self.state.save_execution(WorkflowExecution(id=EXEC_ID, workflow_id="wf", plan_json=PLAN.model_dump_json()))
        self.submitted = True

    @precondition(lambda self: self.submitted and self.owner is None)
    @rule()
    def claim(self):
        if self._finished():
            return
        self.counter += 1
        self.owner = Instance(f"i{self.counter}", self.state, self.shared_cache)

    @precondition(lambda self: self.owner is not None)
    @rule(data=st.data())
    def start(self, data):
        ready = self.owner.ready()
        if ready:
            tid = data.draw(st.sampled_from(ready))
            self._write(self.owner, self.owner.local[tid].advance("running"))

    @precondition(lambda self: self.owner is not None)
    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data, ok):
        running = self.owner.running()
        if not running:
            return
        tid = data.draw(st.sampled_from(running))
        if ok:
            if PLAN.tasks_by_id()[tid].cache.strategy == "disk":
                self.shared_cache.add(KEYS[tid])  # the worker wrote the output before the commit
            self._write(self.owner, self.owner.local[tid].advance("succeeded", metrics={"by": float(self.counter)}))
        else:
            self._write(self.owner, self.owner.local[tid].advance("failed", error=f"by {self.owner.name}"))
        if all(r.finished for r in self.owner.local.values()) or not ok:
            status = "succeeded" if all(r.status in ("succeeded", "cached", "skipped")
                                        for r in self.owner.local.values()) else "failed"
            self.state.save_execution(self.state.get_execution(EXEC_ID).advance(status))
            self.owner = None

    @precondition(lambda self: self.owner is not None)
    @rule()
    def kill(self):
        """The owner dies; it may come back as a zombie (SIGSTOP) and write late."""
        self.zombies.append(self.owner)
        self.owner = None

    @precondition(lambda self: bool(self.zombies))
    @rule(data=st.data())
    def zombie_write(self, data):
        zombie = data.draw(st.sampled_from(self.zombies))
        running = zombie.running()
        if running:
            tid = data.draw(st.sampled_from(running))
            self._write(zombie, zombie.local[tid].advance("succeeded", metrics={"zombie": 1.0}))

    @invariant()
    def never_backwards_and_dependencies_first(self):
        if not self.submitted:
            return
        stored = self.state.get_execution(EXEC_ID)
        statuses = {t: r.status for t, r in stored.tasks.items()}
        for tid, status in statuses.items():
            rank = _rank(status)
            assert rank >= self.seen_rank.get(tid, 0), f"{tid} went back to {status}"
            self.seen_rank[tid] = rank
            if status in ("running", "succeeded"):
                for dep in DEPS[tid]:
                    assert statuses.get(dep) in ("succeeded", "cached"), \
                        f"{tid} is {status} but its dependency {dep} is {statuses.get(dep)}"
        for tid, first in self.first_commit.items():
            assert stored.tasks[tid] == first, f"{tid}: committed result was overwritten"


REDIS_URL = ""


@pytest.mark.slow
def test_cluster_state_machine(redis_url):
    global REDIS_URL
    REDIS_URL = redis_url
    ClusterStateMachine.TestCase.settings = settings(
        max_examples=40, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    ClusterStateMachine.TestCase().runTest()
