"""The fraud example end to end: ``mlw run`` trains, validates (against the champion),
registers, promotes and serves; HTTP predictions equal the registered model's; a second run
replaces the deployment and ``mlw deployments rollback`` serves the first version again; the
seed's register_ml_model/deploy_ml_model serve with 2 replicas. Everything is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.sdk.models import deploy_ml_model, register_ml_model
from mlflowdsl.settings import Settings
from registry_support import free_port, http

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fraud_detection.mlw"
NAME = "fraud_detection_dev"


@pytest.fixture()
def home(tmp_path):
    home = tmp_path / "home"
    yield home
    settings = Settings(home=str(home))
    for record in open_registry(settings).store.deployments():
        pids = [record.get("pid"), record.get("server_pid"), *record.get("worker_pids", [])]
        deployments.stop(settings, record["name"])
        deadline = time.monotonic() + 10
        while any(deployments.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if deployments.pid_alive(p)], "processes left behind"


def mlw(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLW_HOME": str(home)}
    env.pop("MLW_REDIS_URL", None)
    return subprocess.run([str(Path(sys.executable).parent / "mlw"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_fraud_example_trains_validates_registers_and_serves(home, tmp_path):
    port = free_port()
    run = mlw(home, "run", str(EXAMPLE), "-p", "deploy=true", "-p", "serve=true", "-p", f"port={port}", "--json",
              cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    execution_id = json.loads(run.stdout)["execution_id"]
    settings = Settings(home=str(home))
    registry = open_registry(settings)
    champion = registry.resolve(f"models:/{NAME}@champion")
    assert champion.version == 1 and champion.lineage["execution_id"] == execution_id
    assert champion.lineage["task_id"] == "deploy" and champion.model_type == "classification"
    execution = mlw(home, "status", execution_id, "--json", cwd=tmp_path)
    assert champion.lineage["plan_fingerprint"] == json.loads(execution.stdout)["plan_fingerprint"]

    rows = pd.read_csv(REPO / "examples" / "data" / "transactions.csv").drop(columns=["is_fraud"]).head(25)
    status, body = http("POST", f"http://127.0.0.1:{port}/predict", {"rows": rows.to_dict(orient="records")})
    assert status == 200 and body["model"] == f"{NAME}/1"
    assert body["predictions"] == registry.load(champion).predict(rows).tolist()

    listed = mlw(home, "models", "ls", NAME, "--json", cwd=tmp_path)
    assert [(m["id"], m["aliases"], m["lineage"]["execution_id"]) for m in json.loads(listed.stdout)] == [
        (f"{NAME}/1", ["champion"], execution_id)]

    # A second run: the same model is not worse than the champion, becomes version 2 and
    # replaces the deployment on the same port; rollback serves version 1 again.
    again = mlw(home, "run", str(EXAMPLE), "-p", "deploy=true", "-p", "serve=true", "-p", f"port={port}",
                cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert http("POST", f"http://127.0.0.1:{port}/predict", {"rows": rows.head(1).to_dict(orient="records")})[1][
        "model"] == f"{NAME}/2"
    back = mlw(home, "deployments", "rollback", NAME, cwd=tmp_path)
    assert back.returncode == 0 and f"rolled back to {NAME}/1 at http://127.0.0.1:{port}" in back.stdout
    assert http("POST", f"http://127.0.0.1:{port}/predict", {"rows": rows.head(1).to_dict(orient="records")})[1][
        "model"] == f"{NAME}/1"
    stopped = mlw(home, "deployments", "stop", NAME, cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    status_out = json.loads(mlw(home, "deployments", "status", NAME, cwd=tmp_path).stdout)
    assert status_out["state"] == "stopped"


def test_seed_api_registers_and_deploys_with_two_replicas(home):
    settings = Settings(home=str(home))
    from registry_support import fitted

    open_registry(settings).register("fraud_detection_model", fitted(0.9))
    model_id = register_ml_model({"name": "fraud_detection_model", "version": "v1.2.0",
                                  "model_type": "classification", "framework": "sklearn"}, settings=settings)
    deployment_id = deploy_ml_model(model_id, {"target": "production",  # the seed's dict, exactly
                                               "scaling_config": {"min_replicas": 2, "max_replicas": 10}},
                                    settings=settings)
    record = deployments.status(settings, deployment_id)
    assert (record["model"], record["replicas"], record["max_replicas"]) == (model_id, 2, 10)
    assert (record["target"], record["runs_on"]) == ("production", "local")
    assert http("POST", record["endpoint"] + "/predict", {"rows": [{"x": 3.0}]})[1]["predictions"] == [1]
