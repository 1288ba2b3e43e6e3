"""Resource use per attempt and cache-key components, recorded by a real run on the
multi-process test cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.ir import CachePolicy, Plan, RetryPolicy, Task, Workflow, key_part  # noqa: E402
from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.runtime.state.sqlite import SQLiteState  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402

pytestmark = pytest.mark.integration
FN = "tests.integration.observe_tasks"


def _task(id: str, fn: str, deps=(), *, retry: RetryPolicy | None = None, timeout: float | None = None,
          **params) -> Task:
    uses = f"{FN}:{fn}"
    t = Task(id=id, type="custom", uses=uses, dependencies=sorted(deps), params=params,
             cache=CachePolicy(strategy="disk"), retry=retry or RetryPolicy(), timeout=timeout)
    return t.model_copy(update={"key_part": key_part("custom", "1", uses, params, "")})


def test_each_attempt_records_wall_cpu_peak_memory_and_worker(tmp_path, dask_cluster):
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)
    plan = Plan(workflow=Workflow(id="usage"), tasks=[
        _task("heavy", "burn", seconds=0.5, mb=120),
        _task("light", "burn", ["heavy"], seconds=0.05, inputs=[{"$ref": "heavy.output"}]),
        _task("bad", "fail_always", retry=RetryPolicy(attempts=2, initial=0, jitter=False)),
        # a task with a timeout runs in a forked child: its CPU and memory are counted too
        _task("forked", "burn", seconds=0.4, mb=600, timeout=60.0),
    ]).with_fingerprint()
    execution = run_plan(plan, settings, keep_going=True, base_dir=str(tmp_path))
    heavy, light, bad = (execution.tasks[t] for t in ("heavy", "light", "bad"))
    assert heavy.status == light.status == "succeeded" and bad.status == "failed"

    assert len(heavy.usage) == 1 and heavy.usage[0].attempt == 1
    assert heavy.cpu_s >= 0.45  # it burned 0.5 s of CPU in the worker process
    assert heavy.usage[0].wall_s >= 0.45
    assert heavy.peak_rss >= 120 * 1024 * 1024  # it held 120 MiB
    assert heavy.usage[0].worker == heavy.worker and heavy.worker.startswith("tcp://")
    assert dask_cluster.address.split("://")[1].split(":")[0] in heavy.worker
    assert light.cpu_s is not None and light.cpu_s < heavy.cpu_s

    forked = execution.tasks["forked"]
    assert forked.status == "succeeded"
    # the worker itself waits (no CPU) and holds far less than 600 MiB: these are the child's
    assert forked.cpu_s >= 0.35 and forked.peak_rss >= 600 * 1024 * 1024

    # every attempt is measured, also the failing ones
    assert [u.attempt for u in bad.usage] == [1, 2]

    # what the cache key was made of is kept, and its key is the record's key
    parts = light.key_components
    assert parts["key"] == light.cache_key and parts["inputs"] == {"heavy": heavy.cache_key}
    assert parts["params"]["seconds"] == 0.05 and parts["impl_version"] == "1"

    # ... and survives the state backend
    state = SQLiteState(Path(settings.home) / "state.db")
    try:
        stored = state.get_execution(execution.id).tasks["heavy"]
    finally:
        state.close()
    assert stored.peak_rss == heavy.peak_rss and stored.usage == heavy.usage
    assert stored.key_components == heavy.key_components
