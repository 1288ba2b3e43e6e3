"""The README's seed script, run as a user runs it: `python pipeline.py` in a subprocess, the
block copied from the README unchanged. Submission, tuning, registration of the tuning's best
model (said on stderr, with metrics) and a two-replica deployment that answers /predict."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.runtime.state.sqlite import SQLiteState
from mlflowdsl.settings import Settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry_support import http  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def readme_script() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- seed-script -->\n```python\n(.*?)```", text, re.DOTALL).group(1)


@pytest.fixture()
def home(tmp_path):
    home = tmp_path / "home"
    yield home
    settings = Settings(home=str(home))
    registry = open_registry(settings)
    for record in registry.store.deployments():
        pids = [record.get("pid"), record.get("server_pid"), *record.get("worker_pids", [])]
        deployments.stop(settings, record["name"])
        deadline = time.monotonic() + 10
        while any(deployments.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
    registry.close()


def test_the_readme_seed_script_runs_unchanged(tmp_path, home):
    script = tmp_path / "pipeline.py"
    script.write_text(readme_script(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
    env.update(MLW_HOME=str(home), PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "bootstrapping" not in done.stderr
    best = re.search(r"^best (\{.*\}) (\S+)$", done.stdout, re.MULTILINE)
    assert best and set(eval(best.group(1))) == {"n_estimators", "max_depth"}  # noqa: S307 - our own print
    said = re.search(r"register_ml_model: fraud_detection_model/1 is the model of task train_model in execution "
                     r"(\w+) \((.*)\)", done.stderr)
    assert said and "accuracy=" in said.group(2), done.stderr[-2000:]

    state = SQLiteState(home / "state.db")
    executions = state.list_executions(limit=10)
    tuned = state.get_execution(said.group(1))
    state.close()
    assert len(executions) == 2 and {e.status for e in executions} == {"succeeded"}  # each submitted once
    assert tuned.tasks["train_model"].study is not None  # the registered model is the tuning's, not the plain run's

    settings = Settings(home=str(home))
    registry = open_registry(settings)
    mv = registry.resolve("fraud_detection_model/1")
    registry.close()
    assert mv.label == "v1.2.0" and mv.lineage["execution_id"] == tuned.id and mv.lineage["task_id"] == "train_model"
    assert mv.metrics["accuracy"] == pytest.approx(float(best.group(2)))
    assert {"n_estimators", "max_depth"} <= set(mv.params)

    record = deployments.status(settings, "fraud_detection_model")
    assert (record["state"], record["replicas"], record["target"]) == ("running", 2, "production")
    row = {name: 0.1 for name in mv.signature["inputs"]}
    status, body = http("POST", record["endpoint"] + "/predict", {"rows": [row]})
    assert status == 200 and len(body["predictions"]) == 1, json.dumps(body)
