"""`mlw status ID --watch` follows a running execution and returns when it ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
MLW = str(Path(sys.executable).parent / "mlw")
FN = "tests.integration.observe_tasks"


def test_watch_refreshes_until_the_execution_ends(tmp_path, dask_cluster):
    gate = tmp_path / "go"
    (tmp_path / "wf.mlw").write_text(f"""\
workflow watched {{
  task first: custom {{ uses = "{FN}:burn"  seconds = 0.01 }}
  task held: custom after first {{ uses = "{FN}:wait_file"  path = "{gate}" }}
}}
""")
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), MLW_DASK_SCHEDULER=dask_cluster.address,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    run = subprocess.Popen([MLW, "run", "wf.mlw", "--json"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    watch = None
    try:
        deadline = time.monotonic() + 60
        execution_id = None
        while execution_id is None and time.monotonic() < deadline:
            listed = subprocess.run([MLW, "status", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True)
            rows = json.loads(listed.stdout) if listed.returncode == 0 and listed.stdout.strip().startswith("[") else []
            execution_id = rows[0]["execution_id"] if rows else None
            time.sleep(0.2)
        assert execution_id, "the run never recorded its execution"
        watch = subprocess.Popen([MLW, "status", execution_id, "--watch", "--interval", "0.2"], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        assert watch.poll() is None, "watch returned while the execution was still running"
        gate.touch()
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert "succeeded" in out and "held" in out and "first" in out
        assert json.loads(run.communicate(timeout=60)[0])["status"] == "succeeded"
    finally:
        gate.touch()
        for proc in (run, watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    once = subprocess.run([MLW, "status", "--watch"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert once.returncode == 2 and "--watch needs an EXECUTION_ID" in once.stderr
