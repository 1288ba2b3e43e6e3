"""A rerun with nothing to run (every task cached or skipped) starts no Dask cluster, and says
the same as a run that did: statuses, cache keys, events, exit code, report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
MLW = str(Path(sys.executable).parent / "mlw")
FN = "tests.integration.tasks_for_tests"
pytestmark = pytest.mark.integration

WORKFLOW = """\
workflow rerun {{
  params {{ logs: str = "{logs}"  fit: bool = true }}
  task a: custom {{ uses = "{fn}:step"  name = "a"  log_dir = params.logs  x = 1 }}
  task b: custom after a {{ uses = "{fn}:step"  name = "b"  log_dir = params.logs  x = 2 }}
  task c: custom after b {{ uses = "{fn}:step"  name = "c"  log_dir = params.logs  x = 3 }}
  task d: custom after a {{ uses = "{fn}:step"  name = "d"  log_dir = params.logs  when = not params.fit }}
}}
"""


def _env(tmp_path: Path) -> dict[str, str]:
    """An embedded cluster (no scheduler address) and a fresh home."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
    env.update(MLW_HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    return env


def _run_watching_workers(args: list[str], env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, set[int]]:
    """Run ``mlw ARGS`` and collect the pids of every `dask worker` process it spawned."""
    proc = subprocess.Popen([MLW, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                for child in parent.children(recursive=True):
                    try:
                        if "distributed.cli.dask_worker" in " ".join(child.cmdline()):
                            seen.add(child.pid)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
            except psutil.NoSuchProcess:
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=180)
    done.set()
    watcher.join(5)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen


def _events(home: Path, execution_id: str) -> list[str]:
    kinds = []
    for path in sorted(home.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("execution_id") == execution_id:
                kinds.append(event.get("type") or event.get("kind"))
    return kinds


def test_a_fully_cached_rerun_starts_no_cluster_and_reports_the_same(tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text(WORKFLOW.format(logs=tmp_path / "logs", fn=FN))
    env = _env(tmp_path)
    first, first_workers = _run_watching_workers(["run", str(wf), "--json"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first_workers, "the first run computes its tasks on embedded workers (the watcher sees them)"
    again, again_workers = _run_watching_workers(["run", str(wf), "--json", "--report", str(tmp_path / "r.html")],
                                                 env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again_workers == set(), "a fully cached rerun spawned dask worker processes"
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert two["status"] == "succeeded"
    assert {t: r["status"] for t, r in two["tasks"].items()} == {"a": "cached", "b": "cached", "c": "cached",
                                                                 "d": "skipped"}
    assert {t: r["status"] for t, r in one["tasks"].items()} == {"a": "succeeded", "b": "succeeded",
                                                                 "c": "succeeded", "d": "skipped"}
    assert {t: r["metrics"] for t, r in two["tasks"].items()} == {t: r["metrics"] for t, r in one["tasks"].items()}
    assert two["tasks"]["c"]["metrics"] == {"total": 3.0}
    assert (tmp_path / "r.html").read_text().count("cached") >= 3
    shown = subprocess.run([MLW, "status", two["execution_id"], "--json"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    keys = {t: r["cache_key"] for t, r in status["tasks"].items()}
    first_status = json.loads(subprocess.run([MLW, "status", one["execution_id"], "--json"], env=env, cwd=tmp_path,
                                             capture_output=True, text=True, timeout=60).stdout)
    assert keys == {t: r["cache_key"] for t, r in first_status["tasks"].items()}
    assert status["status"] == "succeeded" and status["ended"] is not None


def test_dashboard_flag_says_why_there_is_none_on_a_cached_rerun(tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text(WORKFLOW.format(logs=tmp_path / "logs", fn=FN))
    env = _env(tmp_path)
    assert subprocess.run([MLW, "run", str(wf)], env=env, cwd=tmp_path, capture_output=True,
                          timeout=180).returncode == 0
    again = subprocess.run([MLW, "run", str(wf), "--dashboard"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "dashboard unavailable (no cluster was started: every task was cached or skipped)" in again.stdout


RESUMABLE = """\
workflow resumable {{
  task a: custom {{ uses = "{fn}:step"  name = "a"  log_dir = "{logs}"  x = 1 }}
  task b: custom after a {{ uses = "{fn}:flaky"  name = "b"  log_dir = "{logs}"  failures = 1 }}
}}
"""


def test_a_resume_with_nothing_left_to_run_needs_no_scheduler(tmp_path, dask_cluster):
    """`b` fails in the first execution, a fresh run then caches it: resuming the first one has
    nothing to run, so it finishes even with a scheduler address nobody answers at."""
    wf = tmp_path / "wf.mlw"
    wf.write_text(RESUMABLE.format(fn=FN, logs=tmp_path / "logs"))
    env = dict(_env(tmp_path), MLW_DASK_SCHEDULER=dask_cluster.address)

    def mlw(*args, **more):
        return subprocess.run([MLW, *args], env=dict(env, **more), cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)

    failed = mlw("run", str(wf), "--json")
    assert failed.returncode == 1, failed.stderr
    first = json.loads(failed.stdout)
    assert mlw("run", str(wf)).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    resumed = mlw("run", "--resume", first["execution_id"], "--json", MLW_DASK_SCHEDULER=dead)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["execution_id"] == first["execution_id"] and summary["status"] == "succeeded"
    assert {t: r["status"] for t, r in summary["tasks"].items()} == {"a": "succeeded", "b": "cached"}
