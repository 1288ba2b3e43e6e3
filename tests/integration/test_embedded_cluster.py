"""The embedded cluster as a new user meets it: a script without a main guard runs once, and
Ctrl-C while the cluster starts ends `mlw run` with 130, leaving no worker behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
MLW = str(Path(sys.executable).parent / "mlw")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNGUARDED = """\
import asyncio
from mlflowdsl import DistributedOrchestrator

spec = {"workflow_id": "unguarded", "tasks": [
    {"task_id": "a", "task_type": "custom", "uses": "tests.integration.tasks_for_tests:value",
     "parameters": {"x": 3}}]}

async def main():
    async with DistributedOrchestrator() as orchestrator:
        execution = await orchestrator.wait(await orchestrator.submit_ml_workflow(spec))
        print("STATUS", execution.status, execution.error)

asyncio.run(main())  # no `if __name__ == "__main__":`, as in the seed's snippets
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
    env.update(MLW_HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    return env


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(UNGUARDED)
    done = subprocess.run([sys.executable, str(script)], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("STATUS") == 1 and "STATUS succeeded None" in done.stdout
    assert "bootstrapping" not in done.stderr and "Traceback" not in done.stderr
    listed = subprocess.run([MLW, "status", "--json"], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert [e["workflow_id"] for e in json.loads(listed.stdout)] == ["unguarded"]  # submitted once


def test_ctrl_c_while_the_embedded_cluster_starts_exits_130(tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text('workflow w {\n  task a: custom { uses = "tests.integration.tasks_for_tests:noop" }\n}\n')
    # a session of its own, so the SIGINT below reaches the group as a terminal's Ctrl-C does
    proc = subprocess.Popen([MLW, "run", str(wf)], env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    runner = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while not workers and time.monotonic() < deadline and proc.poll() is None:
        workers = runner.children(recursive=True)
        time.sleep(0.02)
    assert workers, "no worker process was started"
    os.killpg(proc.pid, signal.SIGINT)  # the cluster is starting: workers exist, none has joined yet
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "cancelled" in err
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"worker processes left behind: {[p.pid for p in alive]}"


def test_no_dashboard_line_on_every_run_unless_asked(tmp_path, dask_cluster):
    """The test cluster's scheduler runs with --no-dashboard: a run says nothing about it,
    `--dashboard` says why there is none."""
    wf = tmp_path / "wf.mlw"
    wf.write_text('workflow w {\n  task a: custom { uses = "tests.integration.tasks_for_tests:value" }\n}\n')
    env = dict(_env(tmp_path), MLW_DASK_SCHEDULER=dask_cluster.address)

    def run(*flags):
        return subprocess.run([MLW, "run", str(wf), *flags], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    plain, asked = run(), run("--dashboard")
    assert plain.returncode == 0 and asked.returncode == 0, plain.stderr + asked.stderr
    assert "dashboard unavailable" not in plain.stdout + plain.stderr
    assert asked.stdout.splitlines()[0].startswith("dashboard unavailable")


def test_ctrl_c_during_the_run_cancels_it_and_stops_the_workers(tmp_path):
    logs = tmp_path / "logs"
    wf = tmp_path / "wf.mlw"
    wf.write_text('workflow w {\n  task a: custom { uses = "tests.integration.tasks_for_tests:hang"  name = "a"  '
                  f'log_dir = "{logs}"  seconds = 60 }}\n}}\n')
    proc = subprocess.Popen([MLW, "run", str(wf), "--json"], env=_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (logs.exists() and any(logs.iterdir())) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert logs.exists() and any(logs.iterdir()), "the task never started"
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out)["tasks"]["a"]["status"] == "skipped" and "Traceback" not in err
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"worker processes left behind: {[p.pid for p in alive]}"
