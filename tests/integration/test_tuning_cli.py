"""`mlw run` / `mlw status` show the study of examples/tuning.mlw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MLW = str(Path(sys.executable).parent / "mlw")


def test_the_tuning_example_runs_and_its_study_is_shown(tmp_path, dask_cluster):
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), MLW_DASK_SCHEDULER=dask_cluster.address,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))

    def mlw(*args):
        return subprocess.run([MLW, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    done = mlw("run", str(REPO / "examples" / "tuning.mlw"), "-p", "trials=4", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    study = summary["tasks"]["train"]["study"]
    assert study["budget"] == 4 and sum(study["counts"].values()) == 4
    assert summary["tasks"]["evaluate"]["status"] == "succeeded"

    shown = mlw("status", summary["execution_id"])
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"best cv_accuracy = {study['best_value']:.4g} (maximize) at trial {study['best_trial']}" in text
    assert "trials:" in text and "learning_rate" in text
    listed = json.loads(mlw("status", summary["execution_id"], "--json").stdout)
    assert listed["tasks"]["train"]["study"]["best_params"] == study["best_params"]
