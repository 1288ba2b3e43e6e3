"""A running deployment that gets a new version rolls over in place: the supervisor stays,
gunicorn replaces its workers gracefully, and a client sending requests all the while gets
every one answered (2xx), first by the old version, then by the new one."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings
from registry_support import fitted, free_port, http

pytestmark = pytest.mark.integration


@pytest.fixture()
def settings(tmp_path):
    settings = Settings(home=str(tmp_path / "home"))
    yield settings
    reg = open_registry(settings)
    for record in reg.store.deployments():
        deployments.stop(settings, record["name"], registry=reg)


def _client(endpoint: str, stop: threading.Event, answers: list[tuple[str, int, str, float]]) -> None:
    """/predict and /health in turn, as fast as they are answered; each (route, status, model, seconds)."""
    while not stop.is_set():
        for route, method, body in (("/predict", "POST", [{"x": 0.0}]), ("/health", "GET", None)):
            started = time.monotonic()
            try:
                status, content = http(method, endpoint + route, body, timeout=30)
                model = content.get("model", "") if isinstance(content, dict) else ""
            except Exception as exc:  # noqa: BLE001 - a refused or reset connection is what we count
                status, model = 0, type(exc).__name__
            answers.append((route, status, model, time.monotonic() - started))


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_new_version_rolls_over_without_a_failed_request(settings, replicas):
    reg = open_registry(settings)
    reg.register("m", fitted(0.9))
    reg.register("m", fitted(0.8, flip=True))
    config = {"port": free_port(), "scaling_config": {"min_replicas": replicas, "max_replicas": replicas}}
    first = deployments.deploy(settings, "m/1", config)
    assert http("POST", first["endpoint"] + "/predict", [{"x": 0.0}])[1] == {"predictions": [0], "model": "m/1"}
    stop, answers = threading.Event(), []
    client = threading.Thread(target=_client, args=(first["endpoint"], stop, answers), daemon=True)
    client.start()
    try:
        time.sleep(0.5)
        second = deployments.deploy(settings, "m/2", config)
        done = len(answers)
        time.sleep(0.5)
    finally:
        stop.set()
        client.join(35)
    failed = [a for a in answers if not 200 <= a[1] < 300]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed during the rollover: {failed[:5]}"
    models = [a[2] for a in answers]
    assert models[0] == "m/1" and set(models[done + 1:]) == {"m/2"}  # (one request may be in flight at return)
    switch = models.index("m/2")
    assert set(models[:switch]) == {"m/1"} and "m/1" not in models[switch + 1:]  # never back once switched
    assert second["pid"] == first["pid"] and second["model"] == "m/2" and second["previous"] == ["m/1"]
    assert second["serving"] == ["m/2", None] and second["replicas"] == replicas
    assert not set(first["worker_pids"]) & set(second["worker_pids"])  # every replica was replaced
    assert not [p for p in first["worker_pids"] if deployments.pid_alive(p)]
    assert http("POST", second["endpoint"] + "/predict", [{"x": 0.0}])[1] == {"predictions": [1], "model": "m/2"}
    with urllib.request.urlopen(second["endpoint"] + "/metrics", timeout=10) as response:
        families = {f.name: f.samples for f in text_string_to_metric_families(response.read().decode())}
    assert {(s.labels["model"], s.labels["role"]) for s in families["mlw_serve_model_info"]} == {("m/2", "primary")}
    print(f"{len(answers)} requests, slowest {max(a[3] for a in answers):.2f}s")



def test_a_version_whose_artifact_changed_is_refused_and_the_old_one_keeps_serving(settings):
    reg = open_registry(settings)
    reg.register("m", fitted(0.9))
    two = reg.register("m", fitted(0.8, flip=True))
    first = deployments.deploy(settings, "m/1", {"port": free_port()})
    with open(two.artifact_path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(MlwError, match="cannot serve m/2: .*artifact of m/2 does not match its checksum.*still serves the former"):
        deployments.deploy(settings, "m/2", {"port": first["port"]}, wait_s=20)
    after = deployments.status(settings, "m")
    assert after["pid"] == first["pid"] and after["worker_pids"] == first["worker_pids"]
    assert after["serving"] == ["m/1", None] and after["model"] == "m/1" and after["previous"] == []
    assert http("POST", first["endpoint"] + "/predict", [{"x": 0.0}])[1] == {"predictions": [0], "model": "m/1"}
