"""One chaos trial of execution fencing, shared by ``test_cluster_fencing.py`` and
``bench/chaos_fence.py``: SIGSTOP the instance running a chain of side-effect tasks past its
lease, let another instance take the execution over, SIGCONT the stalled one, and count what
ran and what was announced."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.cluster_support import Cluster
from tests.integration.fence_tasks import effect_chain
from tests.integration.tasks_for_tests import runs


@dataclass
class TrialResult:
    execution_id: str
    owner: str
    status: str
    committed_at_stop: int
    attempts: dict[str, int] = field(default_factory=dict)  # task id -> attempts started
    effects: dict[str, int] = field(default_factory=dict)  # task id -> side effects made
    completed_events: int = 0
    metrics: dict[str, dict] = field(default_factory=dict)  # task id -> its record's metrics
    statuses: dict[str, str] = field(default_factory=dict)
    took_over: bool = False
    stale_stopped: bool = False

    @property
    def twice(self) -> list[str]:
        return sorted(t for t, n in self.attempts.items() if n > 1)


def committed_now(cluster: Cluster, execution_id: str) -> set[str]:
    statuses = cluster.redis.hgetall(f"mlw:exec:{execution_id}:tstatus")
    return {t.decode() for t, s in statuses.items() if s in (b"succeeded", b"cached")}


def owner_of(cluster: Cluster, execution_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in cluster.procs:
            if f"starting execution {execution_id}" in cluster.log(name).read_text():
                return name
        time.sleep(0.05)
    raise AssertionError(f"no instance started {execution_id}")


def completed_events(home: Path, execution_id: str) -> int:
    path = home / "events.jsonl"
    if not path.exists():
        return 0
    count = 0
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        count += event.get("execution_id") == execution_id and event.get("type") == "workflow.completed"
    return count


def trial(cluster: Cluster, workdir: Path, *, tasks: int = 8, seconds: float = 0.4, stop_after: int = 3,
          stop_s: float = 6.0) -> TrialResult:
    logs = workdir / "logs"
    wf = workdir / "wf.mlw"
    workdir.mkdir(parents=True, exist_ok=True)
    wf.write_text(effect_chain(tasks, logs=logs, seconds=seconds))
    execution_id = cluster.submit(wf)
    owner = owner_of(cluster, execution_id)
    deadline = time.monotonic() + 60
    while len(committed_now(cluster, execution_id)) < stop_after:
        assert time.monotonic() < deadline, "the execution did not progress"
        time.sleep(0.01)
    pid = cluster.procs[owner].pid
    os.killpg(pid, signal.SIGSTOP)
    committed = len(committed_now(cluster, execution_id))
    try:
        time.sleep(stop_s)
    finally:
        os.killpg(pid, signal.SIGCONT)
    done = cluster.wait_status(execution_id, ("succeeded", "failed", "cancelled"), timeout=120)
    time.sleep(1.5)  # the woken instance gets to run (and emit) what it would
    result = TrialResult(execution_id=execution_id, owner=owner, status=done["status"], committed_at_stop=committed)
    for i in range(tasks):
        tid = f"t{i:02d}"
        result.attempts[tid] = len(runs(str(logs), f"{tid}.attempt"))
        result.effects[tid] = len(runs(str(logs), f"{tid}.effect"))
        result.metrics[tid] = done["tasks"][tid].get("metrics") or {}
        result.statuses[tid] = done["tasks"][tid]["status"]
    result.completed_events = completed_events(Path(cluster.env["MLW_HOME"]), execution_id)
    others = [n for n in cluster.procs if n != owner]
    result.took_over = any(f"resuming execution {execution_id}" in cluster.log(n).read_text() for n in others)
    # The woken instance forgets the execution (whichever check found it superseded first: its
    # tick, a fenced-out write or a refused task) without acknowledging it.
    deadline = time.monotonic() + 20
    while not result.stale_stopped and time.monotonic() < deadline:
        result.stale_stopped = f"execution {execution_id}: left to its new owner" in cluster.log(owner).read_text()
        time.sleep(0.2)
    return result
