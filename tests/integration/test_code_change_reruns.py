"""Issue 13, point 2, end to end: editing a custom step's function (``np.log1p`` -> ``np.sqrt``)
makes ``mlw plan`` say ``code changed (fe_steps.py)`` and the next run recompute it, while an
edit of a comment leaves it cached."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three embedded-cluster runs
MLW = str(Path(sys.executable).parent / "mlw")

STEP = '''
import numpy as np


def feature(x: float = 3.0) -> dict:
    # the transform
    return {"metrics": {"value": float(np.log1p(x))}}
'''
WORKFLOW = 'workflow w {\n  defaults { cache { strategy = disk } }\n  task fe: custom { uses = "fe_steps:feature"  x = 3 }\n}\n'


@pytest.fixture
def mlw(tmp_path):
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("MLW_DASK_SCHEDULER", None)  # an embedded cluster: its workers import fe_steps.py from here
    (tmp_path / "fe_steps.py").write_text(STEP)
    (tmp_path / "w.mlw").write_text(WORKFLOW)

    def run(*args):
        done = subprocess.run([MLW, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def _edit(tmp_path, old, new):
    path = tmp_path / "fe_steps.py"
    path.write_text(path.read_text().replace(old, new))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _fe(stdout):
    return json.loads(stdout)["tasks"]["fe"]


def _planned(stdout):
    return next(t for t in json.loads(stdout)["tasks"] if t["task_id"] == "fe")


def test_a_code_edit_reruns_the_step_and_a_comment_does_not(mlw, tmp_path):
    first = _fe(mlw("run", "w.mlw", "--json"))
    assert first["status"] == "succeeded" and first["metrics"]["value"] == pytest.approx(math.log1p(3))
    assert _planned(mlw("plan", "w.mlw", "--format", "json"))["status"] == "cached"

    _edit(tmp_path, "np.log1p(x)", "np.sqrt(x)")
    planned = _planned(mlw("plan", "w.mlw", "--format", "json"))
    assert (planned["status"], planned["reasons"]) == ("will run", ["code changed (fe_steps.py)"])
    second_out = mlw("run", "w.mlw", "--json")
    second = _fe(second_out)
    assert second["status"] == "succeeded" and second["metrics"]["value"] == pytest.approx(math.sqrt(3))
    explained = mlw("explain", json.loads(second_out)["execution_id"], "fe")
    assert "code changed (fe_steps.py)" in explained

    _edit(tmp_path, "# the transform", "# square root, not log")
    assert _planned(mlw("plan", "w.mlw", "--format", "json"))["status"] == "cached"
    third = _fe(mlw("run", "w.mlw", "--json"))
    assert third["status"] == "cached" and third["metrics"]["value"] == pytest.approx(math.sqrt(3))
