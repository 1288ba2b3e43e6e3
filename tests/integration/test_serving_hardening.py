"""Serving under hostile bodies and dying processes, against real gunicorn servers: every bad
body is a 4xx saying what is wrong (read within the limit while it streams in), a SIGKILLed
master takes its workers with it and the supervisor serves again on the same port, and
``stop`` verifies that nothing answers any more."""

from __future__ import annotations

import http.client as httplib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings
from registry_support import fitted, http


@pytest.fixture()
def settings(tmp_path):
    settings = Settings(home=str(tmp_path / "home"))
    yield settings
    reg = open_registry(settings)
    for record in reg.store.deployments():
        pids = [record.get("pid"), record.get("server_pid"), *record.get("worker_pids", [])]
        try:
            deployments.stop(settings, record["name"], registry=reg)
        except MlwError:
            pass  # a test that left a foreign listener on the port closes it itself
        deadline = time.monotonic() + 10
        while any(deployments.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if deployments.pid_alive(p)], "processes left behind"


@pytest.fixture()
def served(settings):
    open_registry(settings).register("m", fitted(0.9))
    return deployments.deploy(settings, "m", {"scaling_config": {"min_replicas": 1, "max_replicas": 1}})


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


HOSTILE = [
    (b"[" * 100_000 + b"]" * 100_000, 400, "at most 1024 levels deep"),
    (b'{"rows": [{"x": 1' + b"0" * 400 + b"}]}", 400, "infinity"),
    (b'{"rows": [{"x": 1e400}]}', 400, "infinity"),
    (b'{"rows": [{"x": NaN}]}', 400, "not valid JSON"),
    (b'{"rows": [{"x": Infinity}]}', 400, "not valid JSON"),
    (b'{"rows": [{"x": null}]}', 422, 'row 0, column "x": null is not a number or a string'),
    (b'{"rows": [{"x": 1.0}, {"x": true}]}', 422, 'row 1, column "x": true is not a number'),
    (b'{"rows": [[false]]}', 422, "row 0, value 0: false is not a number"),
    (b'{"rows": [{"x": [1, 2]}]}', 422, 'column "x": [1,2] is not a number'),
    (b'{"rows": [{"x": {"a": 1}}]}', 422, "is not a number or a string"),
    (b"null", 422, "must be a list of rows, got NoneType"),
    ('{"rows": [{"x": 1.0}]}'.encode("utf-16"), 400, "not valid JSON"),
    ('{"rows": [{"x": 1.0}]}'.encode("utf-32"), 400, "not valid JSON"),
    (b'{"rows": [{"x": "\xff"}]}', 400, "UTF-8"),
    (b'{"rows": [[1.0, 2.0]]}', 422, "row 0 has 2 values; the model needs 1"),
    (b'{"rows": [{"x": 1.0}], "probabilities": "yes"}', 422, '"probabilities" must be true or false'),
]


def test_hostile_bodies_get_a_clear_4xx_and_the_replica_keeps_serving(served):
    for raw, status, message in HOSTILE:
        code, body = http("POST", served["endpoint"] + "/predict", raw=raw)
        assert code == status and message in body["error"], (raw[:60], code, body)
        assert http("POST", served["endpoint"] + "/predict", [{"x": 0.0}])[1]["predictions"] == [0]
    assert http("GET", served["endpoint"] + "/health")[1]["pid"] == served["worker_pids"][0]  # nobody crashed


def _rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def test_a_huge_body_is_refused_before_it_is_read(served):
    worker = served["worker_pids"][0]
    before = _rss(worker)
    conn = httplib.HTTPConnection("127.0.0.1", served["port"], timeout=10)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(200 * 1024 * 1024))
    conn.endheaders()
    conn.send(b'{"rows": [' + b" " * 65536)
    response = conn.getresponse()  # answered without the other 200 MB
    assert response.status == 413 and b"larger than 16777216 bytes" in response.read()
    conn.close()
    # without a Content-Length: the limit is applied while the chunks stream in
    conn = httplib.HTTPConnection("127.0.0.1", served["port"], timeout=10)
    chunk = b" " * (1024 * 1024)
    conn.putrequest("POST", "/predict")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for _ in range(40):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server answered and closed the connection before the 40 MB were sent
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    assert _rss(worker) - before < 40 * 1024 * 1024  # it never held the 200 MB (nor the 40 MB)
    assert http("POST", served["endpoint"] + "/predict", [{"x": 3.0}])[1]["predictions"] == [1]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_master_takes_its_workers_and_the_supervisor_serves_again(settings):
    open_registry(settings).register("m", fitted(0.9))
    record = deployments.deploy(settings, "m", {"scaling_config": {"min_replicas": 2, "max_replicas": 2}})
    master, workers = record["server_pid"], record["worker_pids"]
    assert len(workers) == 2
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: not any(deployments.pid_alive(w) for w in workers), 5, "the workers outlived their master")
    again = wait_for(lambda: (lambda r: r if r["state"] == "running" and r["server_pid"] != master else None)(
        deployments.status(settings, "m")), 30, "the supervisor did not serve again")
    assert again["restarts"] == 1 and again["replicas"] == 2 and again["port"] == record["port"]
    assert not set(again["worker_pids"]) & set(workers)
    code, health = http("GET", again["endpoint"] + "/health")
    assert code == 200 and health["pid"] in again["worker_pids"]
    assert http("POST", again["endpoint"] + "/predict", [{"x": 3.0}])[1]["predictions"] == [1]
    stopped = deployments.stop(settings, "m")
    assert stopped["state"] == "stopped" and not _accepts(record["port"])
    assert not [p for p in [again["pid"], again["server_pid"], *again["worker_pids"]] if deployments.pid_alive(p)]


def test_stop_verifies_that_nothing_answers_any_more(settings, served):
    deployments.stop(settings, "m")
    # something else takes the port after the stop: a later stop must not claim all is quiet
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", served["port"]))
    listener.listen()
    try:
        with pytest.raises(MlwError, match=f"something still answers on 127.0.0.1:{served['port']}"):
            deployments.stop(settings, "m")
        assert deployments.status(settings, "m")["state"] == "unknown"
    finally:
        listener.close()
    assert deployments.stop(settings, "m")["state"] == "stopped"


def test_mlw_deployments_stop_after_the_supervisor_and_master_were_killed(settings, served):
    os.kill(served["pid"], signal.SIGKILL)
    os.kill(served["server_pid"], signal.SIGKILL)
    wait_for(lambda: not deployments.pid_alive(served["worker_pids"][0]), 5, "the worker outlived its master")
    mlw = str(Path(sys.executable).parent / "mlw")
    done = subprocess.run([mlw, "deployments", "stop", "m", "--home", settings.home], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "m: stopped" in done.stdout, done.stderr
    assert not _accepts(served["port"])
