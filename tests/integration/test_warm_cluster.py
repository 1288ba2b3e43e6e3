"""`mlw cluster up` / `mlw cluster down`: a warm local cluster that `mlw run` uses instead of
starting its own, found through `<home>/cluster.json`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.integration.test_cached_rerun import MLW, _env, _run_watching_workers

pytestmark = pytest.mark.integration

MODULE = """\
def double(x: int = 1) -> int:
    return 2 * x
"""

WORKFLOW = """\
workflow warm {
  defaults { cache { strategy = none } }
  task a: custom { uses = "warm_tasks:double"  x = 4 }
  task b: custom after a { uses = "tests.integration.tasks_for_tests:value"  x = 2 }
}
"""


def _mlw(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MLW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_uses_the_warm_cluster_and_down_stops_it(tmp_path):
    # the workflow and its custom module are in a directory the warm cluster never saw
    project = tmp_path / "project"
    project.mkdir()
    (project / "warm_tasks.py").write_text(MODULE)
    wf = project / "wf.mlw"
    wf.write_text(WORKFLOW)
    env = _env(tmp_path)
    home = Path(env["MLW_HOME"])
    up = _mlw(env, tmp_path, "cluster", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((home / "cluster.json").read_text())
        assert info["address"] in up.stdout
        warm = psutil.Process(info["pid"])
        workers = warm.children(recursive=True)
        assert any("distributed.cli.dask_worker" in " ".join(p.cmdline()) for p in workers)
        again = _mlw(env, tmp_path, "cluster", "up")
        assert again.returncode == 0 and "already up" in again.stdout

        done, spawned = _run_watching_workers(["run", str(wf), "--json"], env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert spawned == set(), "mlw run started its own workers although a warm cluster is up"
        assert f"using the warm cluster at {info['address']}" in done.stderr
        summary = json.loads(done.stdout)
        assert {t: r["status"] for t, r in summary["tasks"].items()} == {"a": "succeeded", "b": "succeeded"}
    finally:
        down = _mlw(env, tmp_path, "cluster", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not (home / "cluster.json").exists()
    gone, alive = psutil.wait_procs([warm, *workers], timeout=30)
    assert not alive, f"left running after `mlw cluster down`: {[p.pid for p in alive]}"

    done, spawned = _run_watching_workers(["run", str(wf), "--json"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert spawned, "without a warm cluster mlw run starts its own"
    assert "warm cluster" not in done.stderr


def test_a_stale_file_is_ignored_by_run_and_down(tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text(WORKFLOW.replace("warm_tasks:double", "tests.integration.tasks_for_tests:value"))
    env = _env(tmp_path)
    home = Path(env["MLW_HOME"])
    home.mkdir()
    # a dead address, and a pid that is alive but no warm cluster (this test's own process)
    (home / "cluster.json").write_text(json.dumps({"address": f"tcp://127.0.0.1:{_free_port()}",
                                                   "pid": os.getpid(), "workers": 2}))
    done = _mlw(env, tmp_path, "run", str(wf))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warm cluster" not in done.stdout + done.stderr
    down = _mlw(env, tmp_path, "cluster", "down")
    assert down.returncode == 0, down.stderr
    assert "was not running" in down.stdout
    assert psutil.pid_exists(os.getpid()) and not (home / "cluster.json").exists()
    assert "no warm cluster is up" in _mlw(env, tmp_path, "cluster", "down").stdout


def test_cluster_help_lists_up_and_down():
    out = subprocess.run([MLW, "cluster", "--help"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert out.returncode == 0 and " up " in out.stdout and " down " in out.stdout, out.stdout + sys.executable
