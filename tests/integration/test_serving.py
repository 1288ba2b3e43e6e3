"""Deployments that really serve: a detached supervisor, gunicorn replicas behind one port,
HTTP predictions, replica restarts, bad bodies, rollback, stop (no process left behind)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskContext
from registry_support import fitted, free_port, http
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model with real preprocessing (imputation, one-hot encoding) trained on a CSV."""
    root = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(3)
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
    # Stop whatever a test left running, and prove nothing survives.
    reg = open_registry(settings)
    for record in reg.store.deployments():
        pids = [record.get("pid"), record.get("server_pid"), *record.get("worker_pids", [])]
        deployments.stop(settings, record["name"], registry=reg)
        deadline = time.monotonic() + 10
        while any(deployments.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if deployments.pid_alive(p)], "processes left behind"


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


def status_when(settings, name, condition):
    """The deployment's status record if ``condition`` holds for it, else None."""
    record = deployments.status(settings, name)
    return record if condition(record) else None


def test_served_predictions_equal_in_process(trained, settings):
    model, rows = trained
    reg = open_registry(settings)
    reg.register("fraud", model, lineage={"execution_id": "e1"})
    record = deployments.deploy(settings, "models:/fraud/1",
                                {"target": "local", "scaling_config": {"min_replicas": 2, "max_replicas": 4}})
    assert record["state"] == "running" and record["replicas"] == 2 and len(record["worker_pids"]) == 2
    sample = rows.head(60)
    expected = model.predict(sample).tolist()
    status, body = http("POST", record["endpoint"] + "/predict", {"rows": sample.to_dict(orient="records")})
    assert status == 200 and body["predictions"] == expected and body["model"] == "fraud/1"
    # a bare list of rows works as well; rows may be lists in column order
    status, body = http("POST", record["endpoint"] + "/predict", sample.head(3).values.tolist())
    assert status == 200 and body["predictions"] == expected[:3]
    status, body = http("GET", record["endpoint"] + "/health")
    assert status == 200 and body["model"] == "fraud/1" and body["columns"] == ["amount", "channel"]


BAD_BODIES = [
    (b"{not json", 400, "not valid JSON"),
    (b'{"row": []}', 422, 'must be {"rows": [...]}'),
    (b'{"rows": []}', 422, "is empty"),
    (b'{"rows": 5}', 422, "must be a list of rows"),
    (b'{"rows": [{"amount": 1.0}]}', 422, "missing column(s): channel"),
    (b'{"rows": [1, 2]}', 422, "every row must be an object"),
    (b'{"rows": [["a", "b", "c", "d"]]}', 422, "row 0 has 4 values; the model needs 2"),
    (b'{"rows": [["a", "b"]]}', 422, "cannot score these rows"),
    (b"\xff\xfe", 400, "not valid JSON"),
]


def test_bad_bodies_get_a_clear_4xx_and_the_replica_keeps_serving(trained, settings):
    model, rows = trained
    open_registry(settings).register("fraud", model)
    record = deployments.deploy(settings, "fraud", {"scaling_config": {"min_replicas": 1, "max_replicas": 1}})
    good = {"rows": rows.head(2).to_dict(orient="records")}
    for raw, status, message in BAD_BODIES:
        code, body = http("POST", record["endpoint"] + "/predict", raw=raw)
        assert (code, message in body["error"]) == (status, True), (raw, body)
        code, body = http("POST", record["endpoint"] + "/predict", good)
        assert code == 200 and body["predictions"] == model.predict(rows.head(2)).tolist()
    assert deployments.status(settings, "fraud")["worker_pids"] == record["worker_pids"]  # nobody crashed


def test_autoscaler_adds_replicas_under_load_and_removes_them_when_idle(settings, monkeypatch):
    import threading
    from pathlib import Path

    from registry_support import SlowModel

    # The replicas unpickle SlowModel: they must find registry_support.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))
    open_registry(settings).register("slow", SlowModel(0.05))
    record = deployments.deploy(settings, "slow", {"scaling_config": {
        "min_replicas": 1, "max_replicas": 3, "scale_interval_s": 0.5, "scale_up_samples": 2,
        "scale_down_samples": 4}})
    assert record["replicas"] == 1
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            http("POST", record["endpoint"] + "/predict", [{"x": 1.0}], timeout=30)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        scaled = wait_for(lambda: status_when(settings, "slow", lambda r: r["replicas"] >= 2),
                          20, "no scale-up under sustained load")
    finally:
        done.set()
        for t in threads:
            t.join(timeout=40)
    assert scaled["target_replicas"] >= 2 and scaled["requests"] > 0
    wait_for(lambda: deployments.status(settings, "slow")["replicas"] == 1, 20, "no scale-down when idle")


def test_a_killed_replica_is_replaced(trained, settings):
    model, _rows = trained
    open_registry(settings).register("fraud", model)
    record = deployments.deploy(settings, "fraud", {"scaling_config": {"min_replicas": 2, "max_replicas": 2}})
    victim = record["worker_pids"][0]
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    restored = lambda r: r["replicas"] == 2 and victim not in r["worker_pids"]  # noqa: E731
    after = wait_for(lambda: status_when(settings, "fraud", restored), 10, "the replica count was not restored")
    assert len(after["worker_pids"]) == 2 and time.monotonic() - started < 10
    assert http("GET", after["endpoint"] + "/health")[0] == 200


def test_stop_rollback_and_status_from_records(settings):
    reg = open_registry(settings)
    reg.register("m", fitted(0.9))
    reg.register("m", fitted(0.8, flip=True))
    port = free_port()
    first = deployments.deploy(settings, "m/1", {"port": port})
    assert http("POST", first["endpoint"] + "/predict", [{"x": 0.0}])[1]["predictions"] == [0]
    second = deployments.deploy(settings, "m/2", {"port": port})
    assert second["endpoint"] == first["endpoint"] and second["previous"] == ["m/1"]
    assert second["pid"] == first["pid"]  # rolled over in place (test_serving_rollover.py)
    assert http("POST", second["endpoint"] + "/predict", [{"x": 0.0}])[1]["predictions"] == [1]
    back = deployments.rollback(settings, "m")
    assert back["model"] == "m/1" and back["port"] == port and back["previous"] == []
    assert http("POST", back["endpoint"] + "/predict", [{"x": 0.0}])[1] == {"predictions": [0], "model": "m/1"}
    listed = deployments.list_deployments(settings)
    assert [(d["name"], d["state"], d["model"]) for d in listed] == [("m", "running", "m/1")]
    stopped = deployments.stop(settings, "m")
    assert stopped["state"] == "stopped"
    assert not deployments.pid_alive(back["pid"]) and not deployments.pid_alive(back["server_pid"])


def test_mlw_serve_in_the_foreground_until_sigterm(settings, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    open_registry(settings).register("m", fitted(0.9))
    port = free_port()
    mlw = str(Path(sys.executable).parent / "mlw")
    proc = subprocess.Popen([mlw, "serve", "models:/m/1", "--port", str(port), "--replicas", "2",
                             "--home", settings.home], stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        health = wait_for(lambda: _health(port), 60, "mlw serve did not come up")
        assert health["model"] == "m/1"
        assert http("POST", f"http://127.0.0.1:{port}/predict", {"rows": [{"x": 0.0}, {"x": 3.0}]})[1][
            "predictions"] == [0, 1]
        worker = health["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert f"serving m/1 at http://127.0.0.1:{port} with 2 replica(s)" in proc.stderr.read()
        wait_for(lambda: not deployments.pid_alive(worker), 10, "a worker survived mlw serve")
        assert not _accepts(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _health(port: int):
    try:
        return http("GET", f"http://127.0.0.1:{port}/health", timeout=2)[1]
    except OSError:  # not listening yet, or the workers are still loading the model
        return None


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_supervisor_shows_dead_and_stop_still_ends_its_server(settings):
    open_registry(settings).register("m", fitted(0.9))
    record = deployments.deploy(settings, "m", {"scaling_config": {"min_replicas": 1, "max_replicas": 1}})
    os.kill(record["pid"], signal.SIGKILL)
    wait_for(lambda: not deployments.pid_alive(record["pid"]), 10, "the supervisor did not die")
    assert deployments.status(settings, "m")["state"] == "dead"
    assert http("GET", record["endpoint"] + "/health")[0] == 200  # its server is orphaned but alive
    deployments.stop(settings, "m")
    wait_for(lambda: not deployments.pid_alive(record["server_pid"]), 15, "the orphaned server was not stopped")
    assert deployments.status(settings, "m")["state"] == "stopped"
