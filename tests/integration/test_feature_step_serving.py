"""examples/custom/feature_step.mlw as a user runs it: a `@row_transform` feature step, a model
trained on its output, batch inference over the raw CSV, and the registered version served by
a deployment whose /predict takes raw rows (the server cannot import feature_steps.py)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry_support import http  # noqa: E402

MLW = str(Path(sys.executable).parent / "mlw")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def project(tmp_path):
    """The example's files in a scratch copy (its batch output goes next to them)."""
    shutil.copytree(REPO / "examples" / "custom", tmp_path / "examples" / "custom")
    shutil.copytree(REPO / "examples" / "data", tmp_path / "examples" / "data")
    home = tmp_path / "home"
    yield tmp_path, home
    settings = Settings(home=str(home))
    registry = open_registry(settings)
    for record in registry.store.deployments():
        deployments.stop(settings, record["name"])
    registry.close()


def test_the_feature_step_travels_to_batch_inference_and_serving(project):
    root, home = project
    # the embedded cluster: its workers import feature_steps.py from the workflow's directory
    env = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
    env.update(MLW_HOME=str(home), PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
    done = subprocess.run([MLW, "run", str(root / "examples" / "custom" / "feature_step.mlw")], env=env,
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(root / "examples" / "out" / "feature_step_scores.csv", newline="") as fh:
        scored = list(csv.DictReader(fh))
    assert len(scored) == 300 and {"id", "prediction"} <= set(scored[0])

    settings = Settings(home=str(home))
    registry = open_registry(settings)
    mv = registry.resolve("fraud_features/1")
    registry.close()
    assert "amount_per_tx" not in mv.signature["inputs"] and "amount" in mv.signature["inputs"]
    record = deployments.deploy(settings, mv.id, {"target": "local"})
    with open(root / "examples" / "data" / "to_score.csv", newline="") as fh:
        raw = [dict(row) for _, row in zip(range(5), csv.DictReader(fh))]
    rows = [{k: (v if k == "merchant_category" else float(v)) for k, v in r.items() if k != "id"} for r in raw]
    status, body = http("POST", record["endpoint"] + "/predict", {"rows": rows})
    assert status == 200, body
    assert [str(p) for p in body["predictions"]] == [s["prediction"] for s in scored[:5]]
