"""Execution fencing (issue 14, point 1): an instance frozen past its lease (SIGSTOP) while it
runs a chain of side-effect tasks is replaced by another; when it wakes up (SIGCONT) it stops
its graph. No task runs twice, no side effect is made twice, and one ``workflow.completed``
is emitted. More trials: ``bench/chaos_fence.py``."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.cluster_support import Cluster  # noqa: E402
from tests.integration.fence_chaos import owner_of, trial  # noqa: E402
from tests.integration.fence_tasks import effect_chain  # noqa: E402
from tests.integration.tasks_for_tests import runs  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_frozen_owner_is_fenced_out_and_nothing_runs_twice(tmp_path, redis_url, dask_cluster):
    cluster = Cluster(tmp_path, redis_url, dask_cluster.address)
    try:
        cluster.start("first")
        cluster.start("second")
        result = trial(cluster, tmp_path / "trial")
        assert result.took_over, "the other instance never resumed the execution: the trial tested nothing"
        assert result.status == "succeeded"
        assert result.twice == [], f"ran twice: {result.twice} ({result.attempts})"
        assert all(n == 1 for n in result.effects.values()), result.effects
        assert result.completed_events == 1
        for i, tid in enumerate(sorted(result.metrics)):  # every record has the metrics of its computation
            assert result.metrics[tid] == {"total": float(i + 1)}, (tid, result.statuses[tid], result.metrics[tid])
        assert result.stale_stopped, cluster.log(result.owner).read_text()[-3000:]
    finally:
        cluster.close()


def test_a_killed_owners_in_flight_task_is_waited_for_and_keeps_its_metrics(tmp_path, redis_url, dask_cluster):
    """SIGKILL of the owner while a task runs: its attempt finishes on its worker; the new owner
    waits for it instead of starting it again, and records it with the metrics its cache entry
    holds (before: recorded `cached` with empty metrics, or run a second time)."""
    cluster = Cluster(tmp_path, redis_url, dask_cluster.address)
    try:
        cluster.start("first")
        cluster.start("second")
        logs = tmp_path / "logs"
        wf = tmp_path / "wf.mlw"
        wf.write_text(effect_chain(4, logs=logs, seconds=2.5))
        execution_id = cluster.submit(wf)
        owner = owner_of(cluster, execution_id)
        deadline = time.monotonic() + 60
        while not runs(str(logs), "t01.attempt"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        cluster.kill(owner, sig=signal.SIGKILL)
        assert not runs(str(logs), "t01.effect")  # killed while t01 was in flight
        done = cluster.wait_status(execution_id, ("succeeded", "failed"), timeout=120)
        assert done["status"] == "succeeded"
        for i in range(4):
            tid = f"t{i:02d}"
            assert len(runs(str(logs), f"{tid}.attempt")) == 1, tid
            assert done["tasks"][tid]["metrics"] == {"total": float(i + 1)}, (tid, done["tasks"][tid])
    finally:
        cluster.close()
