"""Caching through the executor: reuse across runs and workflows, exact invalidation."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.integration.runtime_helpers import plan, ref, task  # noqa: E402
from tests.integration.tasks_for_tests import runs  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path, dask_cluster):
    return Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)


def _chain(logs, *, b_x=2, cache="disk", id="wf"):
    return plan(
        task("a", "step", name="a", log_dir=logs, x=1, cache=cache),
        task("b", "step", ["a"], name="b", log_dir=logs, x=b_x, inputs=[ref("a")], cache=cache),
        task("c", "step", ["b"], name="c", log_dir=logs, x=3, inputs=[ref("b")], cache=cache),
        task("d", "step", name="d", log_dir=logs, x=4, cache=cache),
        id=id,
    )


def _calls(logs):
    return {name: len(runs(logs, name)) for name in "abcd"}


def test_second_run_computes_nothing(settings, tmp_path):
    logs = str(tmp_path / "logs")
    first = run_plan(_chain(logs), settings)
    assert first.status == "succeeded" and _calls(logs) == {"a": 1, "b": 1, "c": 1, "d": 1}
    second = run_plan(_chain(logs), settings)
    assert second.status == "succeeded"
    assert _calls(logs) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert all(r.status == "cached" and r.cached for r in second.tasks.values())
    # a hit shows the metrics of the run that computed the entry
    assert {t: r.metrics for t, r in second.tasks.items()} == {t: r.metrics for t, r in first.tasks.items()}
    assert {t: r.cache_key for t, r in second.tasks.items()} == {t: r.cache_key for t, r in first.tasks.items()}


def test_one_parameter_change_reruns_exactly_that_task_and_its_dependents(settings, tmp_path):
    logs = str(tmp_path / "logs")
    run_plan(_chain(logs), settings)
    changed = run_plan(_chain(logs, b_x=20), settings)
    assert changed.status == "succeeded"
    assert _calls(logs) == {"a": 1, "b": 2, "c": 2, "d": 1}
    assert {t: r.status for t, r in changed.tasks.items()} == {
        "a": "cached", "b": "succeeded", "c": "succeeded", "d": "cached"}
    # a's output came from the cache (loaded on a worker) into b: 20 + 1, then c: 3 + 21
    assert changed.tasks["b"].metrics == {"total": 21.0}
    assert changed.tasks["c"].metrics == {"total": 24.0}


def test_a_task_shared_by_two_workflows_is_computed_once(settings, tmp_path):
    logs = str(tmp_path / "logs")
    run_plan(_chain(logs, id="first_workflow"), settings)
    other = plan(
        task("a", "step", name="a", log_dir=logs, x=1, cache="disk"),
        task("report", "step", ["a"], name="report", log_dir=logs, inputs=[ref("a")], cache="disk"),
        id="second_workflow",
    )
    ex = run_plan(other, settings)
    assert ex.tasks["a"].status == "cached" and ex.tasks["report"].status == "succeeded"
    assert ex.tasks["report"].metrics == {"total": 1.0}
    assert len(runs(logs, "a")) == 1


def test_fully_cached_plan_is_not_submitted_at_all(settings, tmp_path):
    wide = plan(*[task(f"t{i}", "value", x=i, cache="disk") for i in range(200)])
    run_plan(wide, settings)
    from distributed import Client

    with Client(settings.scheduler) as client:
        def transitions(dask_scheduler):
            return dask_scheduler.transition_counter

        before = client.run_on_scheduler(transitions)
        started = time.perf_counter()
        again = run_plan(wide, settings, client=client)
        elapsed = time.perf_counter() - started
        after = client.run_on_scheduler(transitions)
    assert all(r.status == "cached" for r in again.tasks.values())
    assert after == before  # the scheduler saw no task at all
    assert elapsed < 1.0


def test_redis_cache_is_shared_through_a_real_server(tmp_path, dask_cluster, redis_url):
    logs = str(tmp_path / "logs")
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address, redis_url=redis_url,
                        cache_hmac_key="test-secret")
    run_plan(_chain(logs, cache="redis"), settings)
    # a different home (another machine's disk) still hits: the entries are in Redis
    elsewhere = Settings(home=str(tmp_path / "other-home"), scheduler=dask_cluster.address,
                         redis_url=redis_url, cache_hmac_key="test-secret")
    ex = run_plan(_chain(logs, cache="redis"), elsewhere)
    assert all(r.status == "cached" for r in ex.tasks.values())
    assert _calls(logs) == {"a": 1, "b": 1, "c": 1, "d": 1}
