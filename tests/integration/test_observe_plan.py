"""`mlw plan` and `mlw explain` after real runs: a one-parameter edit makes exactly the edited
task and its dependents `will run`, with the right reasons, and explain names the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
MLW = str(Path(sys.executable).parent / "mlw")
FN = "tests.integration.observe_tasks"

WORKFLOW = """\
workflow plan_demo {{
  params {{ work: float = {work} }}
  defaults {{ cache {{ strategy = disk }} }}
  task prepare: custom {{ uses = "{fn}:burn"  seconds = 0.01 }}
  task train: custom after prepare {{ uses = "{fn}:burn"  seconds = params.work }}
  task score: custom after train {{ uses = "{fn}:burn"  seconds = 0.01 }}
  task side: custom after prepare {{ uses = "{fn}:burn"  seconds = 0.01 }}
  task off: custom {{ uses = "{fn}:burn"  seconds = 0.01  cache {{ strategy = none }} }}
}}
"""


@pytest.fixture
def project(tmp_path, dask_cluster):
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), MLW_DASK_SCHEDULER=dask_cluster.address,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))

    def mlw(*args):
        return subprocess.run([MLW, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)

    def write(work: float) -> str:
        (tmp_path / "wf.mlw").write_text(WORKFLOW.format(work=work, fn=FN))
        return "wf.mlw"

    return mlw, write


def _plan(mlw, file):
    done = mlw("plan", file, "--format", "json")
    assert done.returncode == 0, done.stderr
    return {t["task_id"]: t for t in json.loads(done.stdout)["tasks"]}


def test_plan_after_a_one_parameter_edit_and_explain(project):
    mlw, write = project
    file = write(0.02)
    before = _plan(mlw, file)
    assert {t: r["status"] for t, r in before.items()} == {t: "will run" for t in before}
    assert before["train"]["reasons"] == ["no entry"]
    assert before["off"]["reasons"] == ["caching is off (strategy none)"]

    first = mlw("run", file, "--json")
    assert first.returncode == 0, first.stderr
    after_run = _plan(mlw, file)
    assert {t: r["status"] for t, r in after_run.items()} == {
        "prepare": "cached", "train": "cached", "score": "cached", "side": "cached", "off": "will run"}

    file = write(0.03)  # one parameter
    edited = _plan(mlw, file)
    will_run = {t for t, r in edited.items() if r["status"] == "will run"}
    assert will_run == {"train", "score", "off"}  # the edited task, its dependent, and the uncached one
    assert edited["prepare"]["status"] == edited["side"]["status"] == "cached"
    assert edited["train"]["reasons"] == ["params changed (seconds)"]
    assert [c["field"] for c in edited["train"]["changes"]] == ["params.seconds"]
    assert edited["train"]["changes"][0]["old"] == 0.02 and edited["train"]["changes"][0]["new"] == 0.03
    assert edited["score"]["reasons"] == ["input changed upstream (train)"]

    text = mlw("plan", file)
    assert text.returncode == 0 and "params changed (seconds)" in text.stdout
    assert "2 of 5" not in text.stdout and "3 of 5 task(s) would run" in text.stdout

    second = json.loads(mlw("run", file, "--json").stdout)
    explained = mlw("explain", second["execution_id"], "train")
    assert explained.returncode == 0, explained.stderr
    assert "cache miss" in explained.stdout and "params.seconds" in explained.stdout
    assert "0.02 -> 0.03" in explained.stdout
    as_json = json.loads(mlw("explain", second["execution_id"], "score", "--format", "json").stdout)
    assert as_json["outcome"] == "miss" and [c["field"] for c in as_json["changes"]] == ["inputs.train"]
    hit = json.loads(mlw("explain", second["execution_id"], "prepare", "--format", "json").stdout)
    assert hit["outcome"] == "hit" and hit["changes"] == []

    missing = mlw("explain", second["execution_id"], "nope")
    assert missing.returncode == 1 and "no task 'nope'" in missing.stderr and "Traceback" not in missing.stderr
