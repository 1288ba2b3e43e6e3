"""The executor on a real multi-process Dask cluster (``dask scheduler`` + 2 workers)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

# Workers import the test tasks as `tests.integration.tasks_for_tests` (the fixture puts the
# repo root on their PYTHONPATH); this process needs the same name for the helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.ir import Resources, RetryPolicy
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.runtime.executor import ResourceRefused
from mlflowdsl.runtime.state.sqlite import SQLiteState
from mlflowdsl.settings import Settings
from tests.integration.runtime_helpers import plan, ref, task
from tests.integration.tasks_for_tests import runs

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path, dask_cluster):
    return Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)


def test_parallel_branches_overlap_and_outputs_flow(settings, tmp_path):
    logs = str(tmp_path / "logs")
    p = plan(
        task("a", "step", name="a", log_dir=logs, seconds=1.0, x=1),
        task("b", "step", name="b", log_dir=logs, seconds=1.0, x=2),
        task("c", "step", ["a", "b"], name="c", log_dir=logs, inputs=[ref("a"), ref("b")]),
    )
    ex = run_plan(p, settings)
    assert ex.status == "succeeded"
    assert ex.tasks["c"].metrics == {"total": 3.0}
    (a,), (b,), (c,) = runs(logs, "a"), runs(logs, "b"), runs(logs, "c")
    assert a["start"] < b["end"] and b["start"] < a["end"]  # the two branches ran at the same time
    assert a["pid"] != b["pid"]
    assert c["start"] >= max(a["end"], b["end"])
    assert {ex.tasks["a"].worker, ex.tasks["b"].worker} == set(_worker_addresses(settings))


def _worker_addresses(settings):
    from distributed import Client

    with Client(settings.scheduler) as client:
        return list(client.scheduler_info(n_workers=-1)["workers"])


def test_flaky_task_succeeds_on_third_attempt_with_backoff(settings, tmp_path):
    logs = str(tmp_path / "logs")
    policy = RetryPolicy(attempts=3, backoff="exponential", initial=0.4, max=0.6, jitter=False)
    ex = run_plan(plan(task("f", "flaky", name="f", log_dir=logs, failures=2, retry=policy)), settings)
    r = ex.tasks["f"]
    assert ex.status == "succeeded" and r.status == "succeeded"
    assert r.attempts == 3
    assert [e.message for e in r.attempt_errors] == ["transient failure #1", "transient failure #2"]
    assert all(e.type == "RuntimeError" and "Traceback" in e.traceback for e in r.attempt_errors)
    calls = [c["time"] for c in runs(logs, "f")]
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert 0.4 <= gaps[0] < 0.4 + 0.5  # initial
    assert 0.6 <= gaps[1] < 0.6 + 0.5  # 0.8 capped at max = 0.6


def test_jittered_backoff_stays_within_the_cap(settings, tmp_path):
    logs = str(tmp_path / "logs")
    policy = RetryPolicy(attempts=4, backoff="fixed", initial=0.5, max=5, jitter=True)
    ex = run_plan(plan(task("f", "flaky", name="f", log_dir=logs, failures=3, retry=policy)), settings)
    assert ex.tasks["f"].attempts == 4
    calls = [c["time"] for c in runs(logs, "f")]
    assert all(0 <= b - a < 0.5 + 0.3 for a, b in zip(calls, calls[1:]))


def test_non_retryable_failure_is_not_retried_and_dependents_are_skipped(settings, tmp_path):
    logs = str(tmp_path / "logs")
    p = plan(task("g", "gate", name="g", log_dir=logs, retry=RetryPolicy(attempts=5, initial=0)),
             task("after", "step", ["g"], name="after", log_dir=logs))
    ex = run_plan(p, settings)
    assert ex.status == "failed"
    assert ex.tasks["g"].status == "failed" and ex.tasks["g"].attempts == 1
    assert "below the threshold" in ex.tasks["g"].error
    assert ex.tasks["after"].status == "skipped"
    assert runs(logs, "after") == []


def test_hung_task_is_killed_at_its_timeout_and_counted_failed(settings, tmp_path):
    logs = str(tmp_path / "logs")
    started = time.monotonic()
    ex = run_plan(plan(task("h", "hang", name="h", log_dir=logs, seconds=60, timeout=1.0)), settings)
    assert time.monotonic() - started < 15
    r = ex.tasks["h"]
    assert ex.status == "failed" and r.status == "failed"
    assert r.attempt_errors[0].type == "AttemptTimeout" and "timeout of 1s" in r.error
    (call,) = runs(logs, "h")
    with pytest.raises(ProcessLookupError):  # the attempt's process is really gone
        os.kill(call["pid"], 0)


def test_timeout_attempts_are_retried(settings, tmp_path):
    logs = str(tmp_path / "logs")
    policy = RetryPolicy(attempts=2, backoff="none")
    ex = run_plan(plan(task("h", "hang", name="h", log_dir=logs, seconds=60, timeout=0.5, retry=policy)), settings)
    assert ex.tasks["h"].attempts == 2 and len(runs(logs, "h")) == 2


def _fail_fast_plan(logs):
    return plan(
        task("g", "gate_after", name="g", log_dir=logs, seconds=0.5),
        task("g_child", "step", ["g"], name="g_child", log_dir=logs),
        task("s1", "step", name="s1", log_dir=logs, seconds=1.5),
        task("s2", "step", ["s1"], name="s2", log_dir=logs),
    )


def test_fail_fast_cancels_what_has_not_started(settings, tmp_path):
    logs = str(tmp_path / "logs")
    ex = run_plan(_fail_fast_plan(logs), settings)
    assert ex.status == "failed"
    assert ex.tasks["g"].status == "failed"
    assert ex.tasks["s1"].status == "succeeded"  # already running: allowed to finish
    assert ex.tasks["s2"].status == "skipped" and "fail-fast" in ex.tasks["s2"].error
    assert ex.tasks["g_child"].status == "skipped"
    assert runs(logs, "s2") == []


def test_keep_going_runs_everything_not_downstream_of_a_failure(settings, tmp_path):
    logs = str(tmp_path / "logs")
    ex = run_plan(_fail_fast_plan(logs), settings, keep_going=True)
    assert ex.status == "failed"
    assert ex.tasks["s2"].status == "succeeded" and len(runs(logs, "s2")) == 1
    assert ex.tasks["g_child"].status == "skipped" and "upstream task 'g'" in ex.tasks["g_child"].error


def test_when_false_tasks_and_their_dependents_are_skipped(settings, tmp_path):
    logs = str(tmp_path / "logs")
    p = plan(task("a", "step", name="a", log_dir=logs, skip=True),
             task("b", "step", ["a"], name="b", log_dir=logs),
             task("c", "step", name="c", log_dir=logs))
    ex = run_plan(p, settings)
    assert ex.status == "succeeded"
    assert [ex.tasks[t].status for t in "abc"] == ["skipped", "skipped", "succeeded"]
    assert runs(logs, "a") == runs(logs, "b") == []


@pytest.mark.parametrize("resources, domain, needs", [
    (Resources(gpu=1), "default", "gpu=1"),
    (Resources(memory=100 * 2**30), "default", "memory=100GiB"),
    (Resources(cpu=1), "rag", "domain=rag"),
])
def test_unsatisfiable_resources_are_refused_before_anything_runs(settings, tmp_path, resources, domain, needs):
    logs = str(tmp_path / "logs")
    p = plan(task("ok", "step", name="ok", log_dir=logs),
             task("big", "step", name="big", log_dir=logs, resources=resources, domain=domain, line=7))
    with pytest.raises(ResourceRefused) as err:
        run_plan(p, settings)
    assert "wf.mlw:7:3" in str(err.value) and "`big`" in str(err.value) and needs in str(err.value)
    assert "`ok`" not in str(err.value)
    time.sleep(0.3)
    assert runs(logs, "ok") == []  # nothing was submitted


def test_domains_and_resources_that_fit_are_placed_on_a_worker_that_has_them(settings, tmp_path):
    logs = str(tmp_path / "logs")
    p = plan(*[task(f"i{k}", "step", name=f"i{k}", log_dir=logs, domain="inference",
                    resources=Resources(cpu=2, memory=2 * 10**9)) for k in range(3)])
    ex = run_plan(p, settings)
    assert ex.status == "succeeded"
    from distributed import Client

    with Client(settings.scheduler) as client:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    assert {names[ex.tasks[f"i{k}"].worker] for k in range(3)} == {"test-worker-1"}


def test_tasks_with_different_resources_in_one_chain_are_placed_by_their_own_needs(settings, tmp_path):
    # The executor submits runs of tasks with equal resources as one graph each; a chain that
    # switches back and forth must keep its dependencies and put each task where it fits.
    logs = str(tmp_path / "logs")
    fit = Resources(cpu=2, memory=2 * 10**9)
    p = plan(task("a", "step", name="a", log_dir=logs, x=1),
             task("b", "step", ["a"], name="b", log_dir=logs, domain="inference", resources=fit,
                  inputs=[ref("a")], x=2),
             task("c", "step", ["b"], name="c", log_dir=logs, inputs=[ref("b")], x=4),
             task("d", "step", ["a", "c"], name="d", log_dir=logs, domain="inference", resources=fit,
                  inputs=[ref("a"), ref("c")]))
    ex = run_plan(p, settings)
    assert ex.status == "succeeded", {t: r.error for t, r in ex.tasks.items()}
    assert ex.tasks["d"].metrics == {"total": 1.0 + 7.0}  # a=1, b=1+2, c=3+4, d=a+c
    from distributed import Client

    with Client(settings.scheduler) as client:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    assert {names[ex.tasks[t].worker] for t in ("b", "d")} == {"test-worker-1"}
    (a,), (b,), (c,), (d,) = (runs(logs, t) for t in "abcd")
    assert a["end"] <= b["start"] and b["end"] <= c["start"] and c["end"] <= d["start"]


def test_a_plan_larger_than_the_first_graph_keeps_dependencies_across_graphs(settings, tmp_path):
    # The executor submits graphs of 16, 32, 64, ... tasks; a chain and a fan-in that cross
    # those boundaries must still get their inputs (run.FIRST_GRAPH_TASKS).
    from mlflowdsl.runtime.run import FIRST_GRAPH_TASKS

    logs = str(tmp_path / "logs")
    n = 3 * FIRST_GRAPH_TASKS
    tasks = [task("c0", "step", name="c0", log_dir=logs, x=1)]
    tasks += [task(f"c{i}", "step", [f"c{i - 1}"], name=f"c{i}", log_dir=logs, x=1, inputs=[ref(f"c{i - 1}")])
              for i in range(1, n)]
    tasks.append(task("all", "step", [f"c{i}" for i in range(n)], name="all", log_dir=logs,
                      inputs=[ref(f"c{i}") for i in range(n)]))
    ex = run_plan(plan(*tasks), settings)
    assert ex.status == "succeeded", {t: r.error for t, r in ex.tasks.items() if r.error}
    assert [ex.tasks[f"c{i}"].metrics["total"] for i in range(n)] == [float(i + 1) for i in range(n)]
    assert ex.tasks["all"].metrics == {"total": float(n * (n + 1) // 2)}


def test_runs_on_a_long_lived_client_leave_no_task_behind_on_the_cluster(settings, tmp_path):
    # A notebook or an orchestrator runs many plans on one client: once a run has returned, its
    # tasks (and their outputs on the workers) must be released, not kept by the client.
    from distributed import Client

    logs = str(tmp_path / "logs")
    p = plan(task("a", "step", name="a", log_dir=logs, x=1),
             task("b", "step", ["a"], name="b", log_dir=logs, inputs=[ref("a")]),
             task("c", "step", ["a", "b"], name="c", log_dir=logs, inputs=[ref("a"), ref("b")]))

    def ours(dask_scheduler):
        return sorted(k for k in dask_scheduler.tasks if isinstance(k, str) and k.startswith("mlw_"))

    with Client(settings.scheduler) as client:
        before = set(client.run_on_scheduler(ours))
        for _ in range(3):
            assert run_plan(p, settings, client=client).status == "succeeded"
        deadline = time.monotonic() + 10
        while (left := set(client.run_on_scheduler(ours)) - before) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not left, f"{len(left)} task(s) of finished runs still on the scheduler"


def test_two_runs_at_once_on_one_client_each_get_their_own_results(settings, tmp_path):
    # A client's runs share one message topic (messages.client_topic): messages are routed by
    # execution id, so two runs of the same plan (same task ids) at once must not mix.
    import threading

    from distributed import Client

    logs = str(tmp_path / "logs")
    p = plan(task("a", "step", name="a", log_dir=logs, seconds=0.5, x=1),
             task("b", "step", ["a"], name="b", log_dir=logs, inputs=[ref("a")], x=2))
    results = {}
    with Client(settings.scheduler) as client:
        def run(name, x):
            q = plan(p.tasks[0].model_copy(update={"params": {**p.tasks[0].params, "x": x}}), p.tasks[1])
            results[name] = run_plan(q, settings, client=client)

        threads = [threading.Thread(target=run, args=(f"r{x}", x)) for x in (10, 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert {r.status for r in results.values()} == {"succeeded"} and len(results) == 2
    assert results["r10"].id != results["r20"].id
    assert results["r10"].tasks["b"].metrics == {"total": 12.0}
    assert results["r20"].tasks["b"].metrics == {"total": 22.0}
    (a10, a20) = sorted(runs(logs, "a"), key=lambda r: r["start"])
    assert a10["start"] < a20["end"] and a20["start"] < a10["end"]  # they really ran at the same time


def test_a_killed_worker_does_not_fail_the_workflow(settings, tmp_path, dask_cluster):
    logs = str(tmp_path / "logs")
    p = plan(task("long", "step", name="long", log_dir=logs, seconds=4.0, x=5),
             task("next", "step", ["long"], name="next", log_dir=logs, inputs=[ref("long")]))
    from distributed import Client

    with Client(settings.scheduler) as client:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        killed = []

        def listener(execution, result):
            if result is not None and result.task_id == "long" and result.status == "running" and not killed:
                killed.append(names[result.worker])
                dask_cluster.kill_worker(int(names[result.worker].rsplit("-", 1)[1]))

        ex = run_plan(p, settings, client=client, listener=listener)
    assert killed, "the task never reported running"
    assert ex.status == "succeeded", ex.tasks
    assert ex.tasks["next"].metrics == {"total": 5.0}
    assert names.get(ex.tasks["long"].worker) != killed[0]


def test_records_are_in_the_state_store_and_events_in_the_jsonl(settings, tmp_path):
    import json

    logs = str(tmp_path / "logs")
    ex = run_plan(plan(task("a", "step", name="a", log_dir=logs, x=4),
                       task("b", "gate", ["a"], name="b", log_dir=logs)), settings, keep_going=True)
    stored = SQLiteState(settings.home_path / "state.db").get_execution(ex.id)
    assert stored == ex
    events = [json.loads(line) for line in (settings.home_path / "events.jsonl").read_text().splitlines()]
    types = [e["type"] for e in events if e["execution_id"] == ex.id]
    assert types[:2] == ["workflow.submitted", "workflow.started"]
    assert types[-1] == "workflow.failed"
    assert types.count("task.started") == 2 and types.count("task.completed") == 1
    assert types.count("task.failed") == 1
    assert types.index("task.completed") < types.index("task.failed")
