"""Other servers' clients against real replicas: MLflow's /invocations (requests built as
MLflow's docs build them), the V2 open inference protocol of KServe/Triton, probabilities on
request; and a canary: two versions behind one port, the split honoured within 2 % over
10,000 requests, per-version metrics, promote and rollback from the command line."""

from __future__ import annotations

import http.client as httplib
import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskContext
from registry_support import fitted, http
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocols")
    rng = np.random.default_rng(7)
    n = 200
    frame = pd.DataFrame({"amount": rng.normal(50, 10, n), "channel": rng.choice(["web", "shop"], n)})
    frame["label"] = np.where(frame["amount"] + (frame["channel"] == "web") * 8 > 55, "high", "low")
    frame.to_csv(root / "train.csv", index=False)
    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source=str(root / "train.csv"), target="label"), {}, TaskContext()).outputs["output"]
    model = train.run(train.Params(algorithm="random_forest"), {"data": data}, TaskContext()).outputs["model"]
    return model, frame.drop(columns=["label"])


@pytest.fixture()
def settings(tmp_path):
    settings = Settings(home=str(tmp_path / "home"))
    yield settings
    reg = open_registry(settings)
    for record in reg.store.deployments():
        deployments.stop(settings, record["name"], registry=reg)


@pytest.fixture()
def served(trained, settings):
    model, frame = trained
    open_registry(settings).register("fraud", model)
    record = deployments.deploy(settings, "fraud", {"scaling_config": {"min_replicas": 1, "max_replicas": 1}})
    return record, model, frame.head(5)


def test_mlflow_clients_get_the_same_predictions(served):
    record, model, frame = served
    expected = model.predict(frame).tolist()
    url = record["endpoint"] + "/invocations"
    # the four input shapes of MLflow's scoring server, built as its docs build them
    for body in ({"dataframe_split": frame.to_dict(orient="split")},
                 {"dataframe_records": frame.to_dict(orient="records")},
                 {"instances": frame.to_dict(orient="records")},
                 {"inputs": frame.to_dict(orient="list")}):
        assert http("POST", url, body) == (200, {"predictions": expected}), list(body)
    code, body = http("POST", url, {"dataframe_split": frame.to_dict(orient="split"), "params": {"probabilities": True}})
    assert code == 200 and np.allclose(body["probabilities"], model.predict_proba(frame))
    assert body["classes"] == ["high", "low"]
    code, body = http("POST", url, {"dataframe_split": frame.to_dict(orient="split"), "instances": []})
    assert code == 400 and body["error_code"] == "BAD_REQUEST" and "exactly one of the keys" in body["message"]
    code, body = http("POST", url, {"dataframe_records": [{"amount": 1.0}]})
    assert code == 422 and "missing column(s): channel" in body["message"]
    request = urllib.request.Request(url, data=b"amount,channel\n1,web\n", method="POST",
                                     headers={"Content-Type": "text/csv"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 415
    with urllib.request.urlopen(record["endpoint"] + "/ping", timeout=10) as response:
        assert response.status == 200


def test_v2_inference_protocol_clients(served):
    record, model, frame = served
    base = record["endpoint"] + "/v2"
    assert http("GET", base + "/health/live") == (200, {"live": True})
    assert http("GET", base + "/health/ready") == (200, {"ready": True})
    assert http("GET", base + "/models/fraud/ready") == (200, {"name": "fraud", "ready": True})
    code, meta = http("GET", base + "/models/fraud")
    assert code == 200 and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "amount", "datatype": "FP64", "shape": [-1]},
                              {"name": "channel", "datatype": "BYTES", "shape": [-1]}]
    n = len(frame)
    per_column = {"id": "req-1", "inputs": [
        {"name": "amount", "shape": [n], "datatype": "FP64", "data": frame["amount"].tolist()},
        {"name": "channel", "shape": [n, 1], "datatype": "BYTES", "data": frame["channel"].tolist()}],
        "parameters": {"probabilities": True}}
    code, body = http("POST", base + "/models/fraud/infer", per_column)
    assert code == 200 and body["id"] == "req-1" and body["model_name"] == "fraud" and body["model_version"] == "1"
    predict, proba = body["outputs"]
    assert predict == {"name": "predict", "shape": [n], "datatype": "BYTES", "data": model.predict(frame).tolist()}
    assert proba["shape"] == [n, 2] and np.allclose(np.reshape(proba["data"], (n, 2)), model.predict_proba(frame))
    one_tensor = {"inputs": [{"name": "rows", "shape": [n, 2], "datatype": "BYTES",
                              "data": [str(v) for v in frame.values.ravel()]}]}
    code, body = http("POST", base + "/models/fraud/versions/1/infer", one_tensor)  # rows in column order
    assert code == 200 and body["outputs"][0]["data"] == model.predict(frame).tolist()
    assert http("POST", base + "/models/other/infer", per_column)[0] == 404
    assert http("POST", base + "/models/fraud/versions/7/infer", per_column)[0] == 404
    bad = {"inputs": [{"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.0]}]}
    code, body = http("POST", base + "/models/fraud/infer", bad)
    assert code == 400 and "1 values for shape [2]" in body["error"]
    boolean = {"inputs": [{"name": "amount", "shape": [1], "datatype": "BOOL", "data": [True]}]}
    assert http("POST", base + "/models/fraud/infer", boolean)[0] == 400


def test_v2_tensor_of_numbers_in_column_order(settings):
    open_registry(settings).register("m", fitted(0.9))
    record = deployments.deploy(settings, "m")
    body = {"inputs": [{"name": "input-0", "shape": [3, 1], "datatype": "FP32", "data": [[0.0], [3.0], [2.9]]}]}
    code, answer = http("POST", record["endpoint"] + "/v2/models/m/infer", body)
    assert code == 200 and answer["outputs"] == [{"name": "predict", "shape": [3], "datatype": "INT64",
                                                  "data": [0, 1, 1]}]
    code, answer = http("POST", record["endpoint"] + "/predict", {"rows": [{"x": 0.0}], "probabilities": True})
    assert code == 200 and answer["classes"] == [0, 1] and answer["probabilities"][0][0] > 0.5


def _count_models(endpoint: str, total: int, clients: int) -> dict[str, int]:
    host, port = endpoint.rsplit("//", 1)[1].split(":")
    counts: list[dict[str, int]] = [{} for _ in range(clients)]
    body = json.dumps([{"x": 0.0}]).encode()

    def client(k: int) -> None:
        conn = httplib.HTTPConnection(host, int(port), timeout=30)
        for _ in range(k, total, clients):
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())
            counts[k][answer["model"]] = counts[k].get(answer["model"], 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: dict[str, int] = {}
    for each in counts:
        for model, n in each.items():
            out[model] = out.get(model, 0) + n
    return out


def _mlw(settings, *args: str) -> str:
    mlw = str(Path(sys.executable).parent / "mlw")
    done = subprocess.run([mlw, *args, "--home", settings.home], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_canary_split_per_version_metrics_promote_and_rollback(settings):
    reg = open_registry(settings)
    reg.register("m", fitted(0.9))
    reg.register("m", fitted(0.8, flip=True))
    out = _mlw(settings, "deployments", "start", "m/1", "--canary", "2", "--canary-percent", "20",
               "--min-replicas", "2")
    assert "canary m/2 gets 20% of the requests" in out
    record = deployments.status(settings, "m")
    assert record["canary"] == {"model": "m/2", "percent": 20.0} and record["model"] == "m/1"
    counts = _count_models(record["endpoint"], 10_000, clients=8)
    assert sum(counts.values()) == 10_000
    assert abs(counts["m/2"] / 10_000 - 0.20) <= 0.02, counts
    with urllib.request.urlopen(record["endpoint"] + "/metrics", timeout=10) as response:
        families = {f.name: f.samples for f in text_string_to_metric_families(response.read().decode())}
    served = {s.labels["model"]: s.value for s in families["mlw_serve_requests"]
              if s.name == "mlw_serve_requests_total" and s.labels["route"] == "predict"}
    assert served == {"m/1": counts["m/1"], "m/2": counts["m/2"]}
    roles = {(s.labels["model"], s.labels["role"]) for s in families["mlw_serve_model_info"] if s.value == 1}
    assert roles == {("m/1", "primary"), ("m/2", "canary")}
    assert "promoted; serving m/2 alone" in _mlw(settings, "deployments", "promote", "m")
    after = deployments.status(settings, "m")
    assert after["model"] == "m/2" and after["canary"] is None and after["previous"] == ["m/1"]
    assert after["port"] == record["port"]
    assert _count_models(after["endpoint"], 200, clients=4) == {"m/2": 200}
    # a new canary, ended by rollback: the primary alone again
    deployments.deploy(settings, "m/2", {"canary": "m/1", "canary_percent": 50})
    back = deployments.rollback(settings, "m")
    assert back["model"] == "m/2" and back["canary"] is None and back["previous"] == ["m/1"]
    assert _count_models(back["endpoint"], 100, clients=2) == {"m/2": 100}


def test_model_deployment_canary_serves_the_new_version_next_to_the_current_one(settings, tmp_path):
    from mlflowdsl.runtime.registry.services import RegistryServices
    from mlflowdsl.tasks import TaskContext
    from stdlib_tasks.model_deployment import ModelDeployment

    task = ModelDeployment()
    ctx = TaskContext(artifact_dir=str(tmp_path / "artifacts"), services=RegistryServices(settings))
    params = task.Params(name="m", serve=True, canary=30)
    first = task.run(params, {"model": fitted(0.9)}, ctx).outputs["deployment"]
    assert first["model"] == "m/1" and deployments.status(settings, "m")["canary"] is None  # nothing to compare with
    second = task.run(params, {"model": fitted(0.8, flip=True)}, ctx).outputs["deployment"]
    record = deployments.status(settings, "m")
    assert second["model"] == "m/2" and record["model"] == "m/1"
    assert record["canary"] == {"model": "m/2", "percent": 30.0} and record["port"] == first["port"]
    health = http("GET", record["endpoint"] + "/health")[1]
    assert (health["model"], health["canary"], health["canary_percent"]) == ("m/1", "m/2", 30.0)
