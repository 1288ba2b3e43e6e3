"""registry = "mlflow": versions, aliases, tags and alias history in MLflow's Model Registry (a
real server, mlflow_support), read back with MlflowClient; models:/ URIs load with pyfunc; the
gated promotion keeps its guarantee under two concurrent promoter processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow_support import mlflow_server, mlflow_uri  # noqa: F401 - fixtures
from registry_support import fitted

from mlflowdsl.runtime.registry import Gate, GateRefused, open_registry
from mlflowdsl.settings import Settings

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent


@pytest.fixture
def settings(tmp_path, mlflow_uri):  # noqa: F811 - fixture
    return Settings(home=str(tmp_path / "home"), registry="mlflow", mlflow_tracking_uri=mlflow_uri)


def test_versions_aliases_and_history_live_in_mlflow_and_models_uris_load_with_pyfunc(tmp_path, settings, monkeypatch):
    from mlflow.tracking import MlflowClient

    import mlflow.pyfunc

    name = f"clf-{tmp_path.name}"[:60].replace("_", "-")
    registry = open_registry(settings)
    v1 = registry.register(name, fitted(0.7, name=name), lineage={"execution_id": "e1"})
    v2 = registry.register(name, fitted(0.9, name=name, flip=True))
    assert (v1.version, v2.version) == (1, 2)
    assert registry.resolve(f"models:/{name}/1").version == 1
    assert registry.resolve(name).version == 2  # latest
    registry.promote(f"{name}/1", "champion")
    with pytest.raises(GateRefused):  # 0.9 does not beat 0.7 by 0.5
        registry.promote(f"{name}/2", "champion", gate=Gate(against="champion", metrics=("accuracy",), min_delta=0.5))
    assert registry.aliases(name) == {"champion": 1}
    registry.promote(f"{name}/2", "champion", gate=Gate(against="champion", metrics=("accuracy",)))
    assert registry.resolve(f"models:/{name}@champion").version == 2
    assert [(h.version, h.previous) for h in registry.history(name)] == [(1, None), (2, 1)]

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    held = client.get_model_version_by_alias(name, "champion")
    assert held.version == "2"
    assert held.tags["mlw.metric.accuracy"] == "0.9"
    assert client.get_model_version(name, "1").tags["mlw.lineage.execution_id"] == "e1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    rows = pd.DataFrame({"x": [0.0, 3.0]})
    assert list(loaded.predict(rows)) == list(registry.load(f"{name}@champion").predict(rows)) == [1, 0]
    registry.close()
    # a fresh process-level registry on the same server sees the same state (nothing is local)
    other = open_registry(Settings(home=str(tmp_path / "elsewhere"), registry="mlflow",
                                   mlflow_tracking_uri=settings.mlflow_tracking_uri))
    assert other.aliases(name) == {"champion": 2}
    other.close()


@pytest.mark.slow
def test_two_concurrent_gated_promoters_never_lose_a_better_model(tmp_path, settings):
    name = f"race-{tmp_path.name}"[:60].replace("_", "-")
    registry = open_registry(settings)
    for i in range(6):  # accuracy grows with the version: the best is 6
        registry.register(name, fitted(0.5 + 0.08 * i, name=name))
    registry.promote(f"{name}/1", "champion")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, str(HERE / "mlflow_promoter.py"), settings.home, settings.mlflow_tracking_uri,
                               name, str(barrier), *versions], cwd=str(HERE.parent.parent))
             for versions in (["2", "4", "6"], ["3", "5"])]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert registry.aliases(name) == {"champion": 6}
    history = registry.history(name)
    # every move starts from the version the move before it set: no move was made on a stale read
    assert all(b.previous == a.version for a, b in zip(history, history[1:])), [h.to_dict() for h in history]
    assert all(b.version > a.version for a, b in zip(history, history[1:]))
    registry.close()


def test_mlw_serve_serves_an_alias_of_the_mlflow_registry(tmp_path, settings):
    import time

    from registry_support import http

    from mlflowdsl.runtime.registry import deployments

    name = f"srv-{tmp_path.name}"[:60].replace("_", "-")
    registry = open_registry(settings)
    model = fitted(0.9, name=name)
    registry.register(name, model)
    registry.promote(f"{name}/1", "champion")
    try:
        record = deployments.deploy(settings, f"models:/{name}@champion",
                                    {"scaling_config": {"min_replicas": 1, "max_replicas": 1}}, registry=registry)
        assert record["state"] == "running" and record["model"] == f"{name}/1"
        rows = [{"x": 0.0}, {"x": 3.0}]
        status, body = http("POST", record["endpoint"] + "/predict", {"rows": rows})
        assert status == 200 and body["predictions"] == model.predict(pd.DataFrame(rows)).tolist() == [0, 1]
    finally:
        for rec in registry.store.deployments():
            deployments.stop(settings, rec["name"], registry=registry)
        deadline = time.monotonic() + 10
        while any(deployments.pid_alive(r.get("pid")) for r in registry.store.deployments()) and time.monotonic() < deadline:
            time.sleep(0.1)
        registry.close()
