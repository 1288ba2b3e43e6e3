"""`mlw run` / `mlw status` as a user runs them: subprocesses on the test cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.tasks_for_tests import runs  # noqa: E402

pytestmark = pytest.mark.integration
MLW = str(Path(sys.executable).parent / "mlw")
FN = "tests.integration.tasks_for_tests"

WORKFLOW = """\
workflow cli_test {{
  params {{ logs: str = "{logs}"  x: int = 1 }}
  defaults {{ cache {{ strategy = disk }} }}
  task a: custom {{ uses = "{fn}:step"  name = "a"  log_dir = params.logs  x = params.x }}
  task b: custom after a {{ uses = "{fn}:step"  name = "b"  log_dir = params.logs  x = 2 }}
  task c: custom after b {{ uses = "{fn}:wait_for_file"  name = "c"  log_dir = params.logs  path = "{gate}" }}
  task d: custom after c {{ uses = "{fn}:step"  name = "d"  log_dir = params.logs }}
  task e: custom {{ uses = "{fn}:{e_fn}"  name = "e"  log_dir = params.logs }}
}}
"""


@pytest.fixture
def project(tmp_path, dask_cluster):
    """A workflow file, and an environment pointing mlw at the test cluster and a fresh home."""
    logs, gate = tmp_path / "logs", tmp_path / "go"

    def write(e_fn="step"):
        path = tmp_path / "wf.mlw"
        path.write_text(WORKFLOW.format(logs=logs, fn=FN, gate=gate, e_fn=e_fn))
        return path

    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), MLW_DASK_SCHEDULER=dask_cluster.address,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    return {"write": write, "logs": str(logs), "gate": gate, "env": env, "dir": tmp_path}


def mlw(project, *args, timeout=120):
    return subprocess.run([MLW, *args], env=project["env"], cwd=project["dir"], capture_output=True, text=True,
                          timeout=timeout)


def test_run_json_has_the_documented_shape(project):
    project["gate"].touch()
    done = mlw(project, "run", str(project["write"]()), "--json", "-p", "x=5")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded" and len(summary["execution_id"]) == 12
    assert set(summary["tasks"]) == {"a", "b", "c", "d", "e"}
    a = summary["tasks"]["a"]
    assert {"status", "attempts", "duration_s", "cached", "metrics"} <= set(a)
    assert a == {**a, "status": "succeeded", "attempts": 1, "cached": False, "metrics": {"total": 5.0}}
    again = json.loads(mlw(project, "run", str(project["write"]()), "--json", "-p", "x=5").stdout)
    assert {t["status"] for t in again["tasks"].values()} == {"cached"}
    assert again["execution_id"] != summary["execution_id"]


def test_plain_output_table_and_status(project):
    project["gate"].touch()
    done = mlw(project, "run", str(project["write"]()))
    assert done.returncode == 0, done.stderr
    assert "succeeded a" in done.stdout and "total=1" in done.stdout
    execution_id = done.stdout.split("(execution ", 1)[1].split(",", 1)[0]
    listed = json.loads(mlw(project, "status", "--json").stdout)
    assert listed[0]["execution_id"] == execution_id and listed[0]["status"] == "succeeded"
    shown = json.loads(mlw(project, "status", execution_id[:6], "--json").stdout)
    assert shown["execution_id"] == execution_id and shown["tasks"]["a"]["metrics"] == {"total": 1.0}
    assert "a" in mlw(project, "status", execution_id).stdout


def test_failed_workflow_exits_1_and_keep_going_runs_independent_tasks(project):
    project["gate"].touch()
    done = mlw(project, "run", str(project["write"](e_fn="gate")), "--keep-going", "--json")
    assert done.returncode == 1
    tasks = json.loads(done.stdout)["tasks"]
    assert tasks["e"]["status"] == "failed" and "below the threshold" in tasks["e"]["error"]
    assert tasks["d"]["status"] == "succeeded"


def test_compile_errors_are_diagnostics_not_tracebacks(project):
    bad = project["dir"] / "bad.mlw"
    bad.write_text('workflow w {\n  task a: custom { uses = "%s:step"  nme = "x" }\n}\n' % FN)
    done = mlw(project, "run", str(bad))
    assert done.returncode == 1
    assert "bad.mlw:2:" in done.stderr and "Traceback" not in done.stderr
    missing = mlw(project, "run", str(project["dir"] / "nope.mlw"))
    assert missing.returncode in (1, 2) and "Traceback" not in missing.stderr
    unknown = mlw(project, "status", "doesnotexist")
    assert unknown.returncode == 1 and "no execution" in unknown.stderr


def test_unsatisfiable_resources_name_the_line(project):
    path = project["dir"] / "gpu.mlw"
    path.write_text('workflow w {\n  task a: custom {\n    uses = "%s:noop"\n    resources { gpu = 1 }\n  }\n}\n' % FN)
    done = mlw(project, "run", str(path))
    assert done.returncode == 1
    assert f"{path}:2:" in done.stderr and "gpu=1" in done.stderr and "Traceback" not in done.stderr


def _wait_for(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _recorded(project, expected):
    from mlflowdsl.runtime.state.sqlite import SQLiteState

    path = Path(project["env"]["MLW_HOME"]) / "state.db"
    if not path.exists():
        return False
    state = SQLiteState(path)
    try:
        (latest,) = state.list_executions(limit=1) or [None]
        if latest is None:
            return False
        tasks = state.get_execution(latest.id).tasks
        return all(tasks.get(t) is not None and tasks[t].status == s for t, s in expected.items())
    finally:
        state.close()


def test_resume_after_the_runner_is_killed_reruns_nothing_that_succeeded(project):
    wf = project["write"]()
    proc = subprocess.Popen([MLW, "run", str(wf)], env=project["env"], cwd=project["dir"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: runs(project["logs"], "c-start"))
    _wait_for(lambda: _recorded(project, {"a": "succeeded", "b": "succeeded", "c": "running"}))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    listed = json.loads(mlw(project, "status", "--json").stdout)
    assert listed[0]["status"] == "running"  # nobody could record the end
    execution_id = listed[0]["execution_id"]
    project["gate"].touch()
    done = mlw(project, "run", "--resume", execution_id, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["execution_id"] == execution_id and summary["status"] == "succeeded"
    assert summary["tasks"]["a"]["status"] == "succeeded" and summary["tasks"]["b"]["status"] == "succeeded"
    assert len(runs(project["logs"], "a")) == 1 and len(runs(project["logs"], "b")) == 1
    assert summary["tasks"]["d"]["status"] == "succeeded"
    again = mlw(project, "run", "--resume", execution_id)
    assert again.returncode == 1 and "already succeeded" in again.stderr


def test_ctrl_c_cancels_and_records_cancelled(project):
    wf = project["write"]()
    proc = subprocess.Popen([MLW, "run", str(wf), "--json"], env=project["env"], cwd=project["dir"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: runs(project["logs"], "c-start"))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "cancelled"
    assert summary["tasks"]["d"]["status"] == "skipped"
    shown = json.loads(mlw(project, "status", summary["execution_id"], "--json").stdout)
    assert shown["status"] == "cancelled"
    project["gate"].touch()  # release the orphaned attempt on the worker
