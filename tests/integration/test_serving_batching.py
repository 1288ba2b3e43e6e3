"""Micro-batching and /metrics against real gunicorn replicas: 32 concurrent clients with mixed
good and bad rows each get their own predictions (or their own 422), in their rows' order;
the metrics parse with prometheus-client's parser and count every request, across replicas."""

from __future__ import annotations

import threading
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskContext
from registry_support import http
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("batching")
    rng = np.random.default_rng(5)
    n = 300
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


def metrics_of(endpoint: str) -> dict[str, list]:
    with urllib.request.urlopen(endpoint + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def hammer(endpoint: str, requests: list[dict], clients: int) -> list:
    answers: list = [None] * len(requests)
    barrier = threading.Barrier(clients)

    def client(k: int) -> None:
        barrier.wait()  # all start at once, so requests overlap
        for i in range(k, len(requests), clients):
            answers[i] = http("POST", endpoint + "/predict", requests[i], timeout=60)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_batching_answers_each_of_32_clients_with_its_own_rows(trained, settings):
    model, frame = trained
    open_registry(settings).register("fraud", model)
    record = deployments.deploy(settings, "fraud", {"scaling_config": {"min_replicas": 1, "max_replicas": 1}})
    rng = np.random.default_rng(11)
    requests, expected = [], []
    for i in range(320):
        rows = frame.iloc[rng.integers(0, len(frame), 1 + i % 4)].to_dict(orient="records")
        if i % 7 == 3:
            rows[-1] = {**rows[-1], "amount": "lots"}  # the model cannot score this one
            expected.append(None)
        else:
            expected.append(model.predict(pd.DataFrame(rows)).tolist())
        requests.append({"rows": rows, "probabilities": i % 5 == 0})
    answers = hammer(record["endpoint"], requests, clients=32)
    for request, want, (code, body) in zip(requests, expected, answers):
        if want is None:
            assert code == 422 and "cannot score these rows" in body["error"], body
        else:
            assert code == 200 and body["predictions"] == want, (request, body)
            if request["probabilities"]:
                probs = model.predict_proba(pd.DataFrame(request["rows"]))
                assert np.allclose(body["probabilities"], probs) and body["classes"] == model.classes
            else:
                assert "probabilities" not in body
    samples = metrics_of(record["endpoint"])["mlw_serve_batch_rows"]
    calls = value(samples, "mlw_serve_batch_rows_count", model="fraud/1")
    good_rows = sum(len(r["rows"]) for r, w in zip(requests, expected) if w is not None)
    assert value(samples, "mlw_serve_batch_rows_sum", model="fraud/1") >= good_rows
    assert calls < len(requests)  # concurrent requests shared predict calls


def test_batching_off_scores_each_request_alone(trained, settings):
    model, frame = trained
    open_registry(settings).register("fraud", model)
    record = deployments.deploy(settings, "fraud", {"batching": False,
                                                    "scaling_config": {"min_replicas": 1, "max_replicas": 1}})
    assert record["batching"]["enabled"] is False
    rows = frame.head(2).to_dict(orient="records")
    answers = hammer(record["endpoint"], [{"rows": rows}] * 48, clients=16)
    assert all(a == (200, {"predictions": model.predict(frame.head(2)).tolist(), "model": "fraud/1"}) for a in answers)
    samples = metrics_of(record["endpoint"])["mlw_serve_batch_rows"]
    assert value(samples, "mlw_serve_batch_rows_count") == 48
    assert value(samples, "mlw_serve_batch_rows_sum") == 96


def test_metrics_count_every_request_of_every_replica(trained, settings):
    model, frame = trained
    open_registry(settings).register("fraud", model)
    record = deployments.deploy(settings, "fraud", {"scaling_config": {"min_replicas": 2, "max_replicas": 2}})
    good = {"rows": frame.head(3).to_dict(orient="records")}
    requests = [good] * 40 + [{"rows": []}] * 5 + [{"row": 1}] * 3
    answers = hammer(record["endpoint"], requests, clients=8)
    assert sorted({code for code, _ in answers}) == [200, 422]
    pids = {http("GET", record["endpoint"] + "/health")[1]["pid"] for _ in range(20)}
    metrics = metrics_of(record["endpoint"])  # whichever replica answers: the sum of both
    requests_total = metrics["mlw_serve_requests"]
    assert value(requests_total, "mlw_serve_requests_total", model="fraud/1", code="200") == 40
    assert value(requests_total, "mlw_serve_requests_total", model="fraud/1", code="422") == 8
    assert value(metrics["mlw_serve_errors"], "mlw_serve_errors_total", code="422") == 8
    assert value(metrics["mlw_serve_errors"], "mlw_serve_errors_total", code="200") == 0
    latency = metrics["mlw_serve_request_duration_seconds"]
    assert value(latency, "mlw_serve_request_duration_seconds_count", route="predict") == 48
    assert value(latency, "mlw_serve_request_duration_seconds_bucket", le="+Inf") == 48
    assert value(metrics["mlw_serve_rows_scored"], "mlw_serve_rows_scored_total") == 120
    info = [s for s in metrics["mlw_serve_model_info"] if s.value == 1]
    assert {(s.labels["name"], s.labels["version"], s.labels["role"]) for s in info} == {("fraud", "1", "primary")}
    assert metrics_of(record["endpoint"])["mlw_serve_requests"] == requests_total or len(pids) >= 1
    # the supervisor reads the same counters for the record (and the autoscaler)
    deadline = time.monotonic() + 10
    while deployments.status(settings, "fraud").get("requests") != 48 and time.monotonic() < deadline:
        time.sleep(0.2)
    status = deployments.status(settings, "fraud")
    assert (status["requests"], status["errors"]) == (48, 8)
