"""Execution fencing (issue 14, point 1): an instance frozen past its lease (SIGSTOP) while it
runs a chain of side-effect tasks is replaced by another; when it wakes up (SIGCONT) it stops
its graph. No task runs twice, no side effect is made twice, and one ``workflow.completed``
is emitted. More trials: ``bench/chaos_fence.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.cluster_support import Cluster  # noqa: E402
from tests.integration.fence_chaos import trial  # noqa: E402

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
