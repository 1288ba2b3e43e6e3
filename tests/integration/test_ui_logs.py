"""Per-attempt log capture (runtime/logcapture.py) on a real multi-process Dask cluster:
stdout, stderr and logging of each attempt in the state store (SQLite and Redis), a failing
task's output, the bound, a timeout attempt's forked child, a killed worker; `mlw logs`."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.cli import cli
from mlflowdsl.ir import RetryPolicy, key_part
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.runtime.state.redis import RedisState
from mlflowdsl.runtime.state.sqlite import SQLiteState
from mlflowdsl.settings import Settings
from tests.integration.runtime_helpers import plan, task

pytestmark = pytest.mark.integration

FN = "tests.integration.ui_tasks"


def utask(id, fn, deps=(), **kw):
    """A custom task calling ``ui_tasks.<fn>``."""
    t = task(id, "noop", deps, **kw)
    uses = f"{FN}:{fn}"
    return t.model_copy(update={"uses": uses, "key_part": key_part("custom", "1", uses, t.params, "")})


@pytest.fixture
def settings(tmp_path, dask_cluster):
    return Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)


def _state(settings):
    return SQLiteState(Path(settings.home) / "state.db")


def test_stdout_stderr_and_logging_of_each_attempt_are_stored_also_when_it_fails(settings, tmp_path):
    retry = RetryPolicy(attempts=2, backoff="fixed", initial=0.1, jitter=False)
    p = plan(utask("ok", "chatty", tag="ok", lines=2),
             utask("bad", "chatty", tag="bad", fail_attempts=5, marker_dir=str(tmp_path), retry=retry))
    ex = run_plan(p, settings, keep_going=True)
    assert ex.tasks["ok"].status == "succeeded" and ex.tasks["bad"].status == "failed"
    state = _state(settings)
    logs = {(g.task_id, g.attempt): g for g in state.attempt_logs(ex.id)}
    assert set(logs) == {("ok", 1), ("bad", 1), ("bad", 2)}
    ok = logs[("ok", 1)].text
    assert "ok stdout line 0\nok stdout line 1\n" in ok
    assert "ok on stderr" in ok and "WARNING ui_tasks: ok logged a warning" in ok
    for n in (1, 2):  # every failed attempt keeps its own output
        assert "bad stdout line 0" in logs[("bad", n)].text and "bad logged a warning" in logs[("bad", n)].text
    assert not logs[("ok", 1)].truncated
    assert [g.attempt for g in state.attempt_logs(ex.id, "bad", 2)] == [2]

    runner = CliRunner()
    out = runner.invoke(cli, ["logs", ex.id[:8], "bad", "--attempt", "2", "--home", settings.home])
    assert out.exit_code == 0, out.output
    assert "bad stdout line 0" in out.output and "== bad" not in out.output
    every = runner.invoke(cli, ["logs", ex.id, "--home", settings.home])
    assert "== ok attempt 1 ==" in every.output and "== bad attempt 2 ==" in every.output
    missing = runner.invoke(cli, ["logs", ex.id, "nope", "--home", settings.home])
    assert missing.exit_code == 1 and "has no task 'nope'" in missing.output


def test_the_bound_keeps_the_last_bytes_and_counts_all(settings):
    limited = Settings(**{**settings.__dict__, "attempt_log_bytes": 4096})
    ex = run_plan(plan(utask("n", "noisy", tag="n", nbytes=100_000)), limited)
    (entry,) = _state(settings).attempt_logs(ex.id)
    assert entry.truncated and entry.total > 100_000
    assert len(entry.text.encode()) <= 4096 and entry.text.endswith("n last line\n")
    out = CliRunner().invoke(cli, ["logs", ex.id, "n", "--home", settings.home])
    assert f"the last {len(entry.text.encode())} of {entry.total} bytes" in out.output


def test_an_attempt_with_a_timeout_is_captured_from_its_forked_child(settings):
    ex = run_plan(plan(utask("t", "chatty", tag="t", timeout=30.0)), settings)
    assert ex.status == "succeeded"
    (entry,) = _state(settings).attempt_logs(ex.id)
    assert "t stdout line 0" in entry.text and "t logged a warning" in entry.text


def test_a_timed_out_attempt_keeps_what_it_printed_before_it_was_killed(settings, tmp_path):
    marker = tmp_path / "marker"
    ex = run_plan(plan(utask("k", "print_then_wait", tag="k", marker=str(marker), seconds=30, timeout=1.5)), settings)
    assert ex.tasks["k"].status == "failed"
    (entry,) = _state(settings).attempt_logs(ex.id)
    assert "k before the kill" in entry.text


def test_output_survives_a_killed_worker(settings, dask_cluster, tmp_path):
    marker = tmp_path / "marker"
    result = {}
    runner = threading.Thread(target=lambda: result.update(ex=run_plan(
        plan(utask("w", "print_then_wait", tag="w", marker=str(marker), seconds=60)), settings)))
    runner.start()
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the task did not start"
    time.sleep(1.2)  # more than the flush interval
    pid = int(marker.read_text())
    import os

    victims = [i for i, p in enumerate(dask_cluster.workers) if p is not None and os.getpgid(pid) == p.pid]
    assert victims, "the task's worker is not one of the fixture's"
    dask_cluster.kill_worker(victims[0])
    runner.join(120)
    assert not runner.is_alive()
    ex = result["ex"]
    assert ex.status == "succeeded"  # Dask ran it again on the other worker
    (entry,) = _state(settings).attempt_logs(ex.id)
    text = entry.text
    assert "w before the kill" in text and "w second run" in text  # the dead worker's part was flushed
    assert text.index("w before the kill") < text.index("w second run")


def test_logs_in_redis_state_and_follow(tmp_path, dask_cluster, redis_url):
    from mlflowdsl.runtime.coordination.config import gateway_from_settings

    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address, redis_url=redis_url,
                        key_prefix="logs-test")
    state = RedisState(gateway_from_settings(settings))
    p = plan(utask("a", "printer", tag="a", count=6, interval=0.3),
             utask("b", "chatty", ["a"], tag="b", lines=1))
    result = {}
    runner = threading.Thread(target=lambda: result.update(ex=run_plan(p, settings, state=state)))
    runner.start()
    deadline = time.time() + 60
    while time.time() < deadline and not state.list_executions(limit=1):
        time.sleep(0.05)
    (header,) = state.list_executions(limit=1)
    seen_growing = []
    while time.time() < deadline and runner.is_alive():
        entries = state.attempt_logs(header.id, "a")
        if entries:
            seen_growing.append(entries[0].text.count("tick"))
        time.sleep(0.2)
    runner.join(60)
    ex = result["ex"]
    assert ex.status == "succeeded"
    assert any(0 < n < 6 for n in seen_growing), f"no partial log seen while it ran: {seen_growing}"
    logs = {g.task_id: g for g in state.attempt_logs(ex.id)}
    assert logs["a"].text.count("tick") == 6 and "b on stderr" in logs["b"].text
    assert list(logs) == ["a", "b"]
    out = CliRunner().invoke(cli, ["logs", ex.id, "a", "--follow", "--redis", redis_url],
                             env={"MLW_KEY_PREFIX": "logs-test"})
    assert out.exit_code == 0, out.output
    assert out.output.count("tick") == 6


def test_the_report_shows_each_attempts_log_escaped(settings, tmp_path):
    from mlflowdsl.report import render_report, write_report
    from mlflowdsl.runtime.state.base import AttemptLog

    retry = RetryPolicy(attempts=2, backoff="fixed", initial=0.1, jitter=False)
    p = plan(utask("ok", "chatty", tag="<i>ok</i>"),
             utask("bad", "chatty", tag="bad", fail_attempts=5, marker_dir=str(tmp_path), retry=retry))
    ex = run_plan(p, settings, keep_going=True)
    html = Path(write_report(ex, tmp_path / "r.html", settings=settings)).read_text()
    assert html.count('class="attempt-log"') == 3
    assert "&lt;i&gt;ok&lt;/i&gt; stdout line 0" in html and "<i>ok</i>" not in html
    assert 'data-task="bad" data-attempt="2" open' in html  # a failed task's logs are open
    cut = render_report(ex, logs=[AttemptLog("ok", 1, "tail\n", total=10_000)])
    assert "(the last 5 characters)" in cut


def test_one_worker_writes_each_runs_logs_to_that_runs_redis_prefix(tmp_path, dask_cluster, redis_url):
    """The same worker processes serve runs with different key prefixes: each run's logs go to its own."""
    from mlflowdsl.runtime.coordination.config import gateway_from_settings

    found = {}
    for prefix in ("logs-one", "logs-two"):
        settings = Settings(home=str(tmp_path / prefix), scheduler=dask_cluster.address, redis_url=redis_url,
                            key_prefix=prefix)
        state = RedisState(gateway_from_settings(settings))
        ex = run_plan(plan(utask("a", "chatty", tag=prefix), utask("b", "chatty", tag=prefix)), settings, state=state)
        found[prefix] = {g.task_id: g.text for g in state.attempt_logs(ex.id)}
    for prefix, logs in found.items():
        assert set(logs) == {"a", "b"} and all(f"{prefix} stdout line 0" in text for text in logs.values())
