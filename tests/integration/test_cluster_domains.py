"""Several consumers per domain (issue 14, point 10): executions of one domain queue on one
stream, which its shard owner reads first; an instance with free slots that may serve the
domain takes the entries the owner leaves waiting, so a second instance no longer idles while
one works through a queue of the same domain."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.compiler.api import compile_file  # noqa: E402
from mlflowdsl.runtime.cluster_mode.submission import submit_plan  # noqa: E402
from mlflowdsl.runtime.coordination.gateway import RedisGateway  # noqa: E402
from tests.integration.cluster_support import Cluster, chain_workflow  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _starts(cluster: Cluster, name: str) -> int:
    return cluster.log(name).read_text().count("starting execution")


def test_executions_of_one_domain_spread_over_the_instances_that_serve_it(tmp_path, redis_url, dask_cluster):
    cluster = Cluster(tmp_path, redis_url, dask_cluster.address)
    try:
        cluster.start("a", "", "--max-running", "1")
        cluster.start("b", "", "--max-running", "1")
        wf = tmp_path / "wf.mlw"
        wf.write_text(chain_workflow(1, logs=tmp_path / "logs", seconds=2.0).replace(
            "strategy = disk", "strategy = none"))
        compiled = compile_file(str(wf))
        assert compiled.ok and compiled.plan is not None
        gateway = RedisGateway(redis_url, prefix="mlw")
        began = time.monotonic()
        try:  # all at once (an `mlw submit` process each would take seconds on a busy machine)
            ids = [submit_plan(gateway, compiled.plan) for _ in range(4)]
        finally:
            gateway.close()
        for execution_id in ids:
            assert cluster.wait_status(execution_id, ("succeeded", "failed"), timeout=120)["status"] == "succeeded"
        elapsed = time.monotonic() - began
        owner = cluster.shards()["default"]
        helper = "b" if owner == "a" else "a"
        assert _starts(cluster, owner) + _starts(cluster, helper) == 4
        assert _starts(cluster, helper) >= 1, f"{helper} idled while {owner} ran all 4 ({elapsed:.1f}s)"
        assert "helping with domain default" in cluster.log(helper).read_text()
        print(f"4 executions of 2 s, max-running 1: {owner} ran {_starts(cluster, owner)}, "
              f"{helper} ran {_starts(cluster, helper)}, {elapsed:.1f}s")
    finally:
        cluster.close()
