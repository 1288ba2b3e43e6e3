"""Cluster mode end to end with instances as separate processes: submit, run, status, cancel,
cluster status, shards by domain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.cluster_support import FN, MLW, Cluster, chain_workflow  # noqa: E402
from tests.integration.tasks_for_tests import runs  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path, redis_url, dask_cluster):
    c = Cluster(tmp_path, redis_url, dask_cluster.address)
    yield c
    c.close()


def test_submit_runs_on_an_instance_and_status_shows_it(cluster, tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text(chain_workflow(3, logs=tmp_path / "logs", seconds=0.0))
    cluster.start("solo")
    execution_id = cluster.submit(wf)
    assert len(execution_id) == 12
    done = cluster.wait_status(execution_id, ("succeeded", "failed"))
    assert done["status"] == "succeeded"
    assert {t: r["metrics"]["total"] for t, r in done["tasks"].items()} == {"t00": 1.0, "t01": 2.0, "t02": 3.0}
    listed = cluster.mlw("status", "--redis", cluster.redis_url)
    assert execution_id in listed.stdout and "dead letters: 0" in listed.stdout
    health = json.loads(cluster.mlw("cluster", "status", "--json").stdout)
    assert [i["id"] for i in health["instances"]] == ["solo"]
    assert health["leader"]["id"] == "solo" and health["shards"]["assignments"] == {"default": "solo"}
    assert health["queues"]["default"] == {"queued": 0, "pending": 0, "pending_by_instance": {}}
    assert health["breaker"] == "closed" and health["dead_letters"] == []


def test_submit_of_a_broken_file_shows_diagnostics(cluster, tmp_path):
    bad = tmp_path / "bad.mlw"
    bad.write_text('workflow w {\n  task a: custom { uses = "%s:step"  nme = "x" }\n}\n' % FN)
    done = cluster.mlw("submit", str(bad))
    assert done.returncode == 1
    assert "bad.mlw:2:" in done.stderr and "Traceback" not in done.stderr
    assert cluster.redis.keys("mlw:queue:*") == []


def test_cancel_stops_a_running_execution(cluster, tmp_path):
    logs = tmp_path / "logs"
    wf = tmp_path / "wf.mlw"
    wf.write_text(chain_workflow(10, logs=logs, seconds=0.5))
    cluster.start("solo")
    execution_id = cluster.submit(wf)
    deadline = time.monotonic() + 60
    while not runs(str(logs), "t01") and time.monotonic() < deadline:
        time.sleep(0.1)
    done = cluster.mlw("cancel", execution_id[:8])
    assert done.returncode == 0 and "cancel" in done.stdout
    final = cluster.wait_status(execution_id, ("cancelled", "succeeded", "failed"), timeout=30)
    assert final["status"] == "cancelled"
    assert final["tasks"]["t09"]["status"] == "skipped"
    assert not runs(str(logs), "t09")


def test_cancel_of_a_queued_execution_and_unknown_ids(cluster, tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text(chain_workflow(2, logs=tmp_path / "logs", seconds=0.0))
    execution_id = cluster.submit(wf)  # no instance runs: it stays queued
    assert cluster.execution(execution_id)["status"] == "pending"
    assert "cancelled" in cluster.mlw("cancel", execution_id).stdout
    assert cluster.execution(execution_id)["status"] == "cancelled"
    unknown = cluster.mlw("cancel", "nope")
    assert unknown.returncode == 1 and "no execution 'nope'" in unknown.stderr
    cluster.start("late")  # it acknowledges the cancelled entry without running it
    deadline = time.monotonic() + 20
    while cluster.redis.xpending("mlw:queue:default", "orchestrators")["pending"] or \
            json.loads(cluster.mlw("cluster", "status", "--json").stdout)["queues"]["default"]["queued"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not runs(str(tmp_path / "logs"), "t00")


def test_instances_run_only_their_domains_and_take_over_when_one_leaves(cluster, tmp_path):
    logs = tmp_path / "logs"
    train, infer = tmp_path / "train.mlw", tmp_path / "infer.mlw"
    train.write_text(chain_workflow(2, logs=logs, seconds=0.0, domain="training", name="train"))
    infer.write_text(chain_workflow(2, logs=logs, seconds=0.0, domain="inference", name="infer"))
    cluster.start("ta", "training")
    cluster.start("ib", "inference")
    deadline = time.monotonic() + 20
    while cluster.shards() != {"training": "ta", "inference": "ib"}:
        assert time.monotonic() < deadline, cluster.shards()
        time.sleep(0.2)
    ids = {cluster.submit(train): "ta", cluster.submit(infer): "ib"}
    for execution_id in ids:
        assert cluster.wait_status(execution_id, ("succeeded", "failed"))["status"] == "succeeded"
    for name in ("ta", "ib"):
        cluster.kill(name, sig=15)
    for execution_id, owner in ids.items():
        assert f"execution {execution_id}" in cluster.log(owner).read_text()
        other = "ib" if owner == "ta" else "ta"
        assert execution_id not in cluster.log(other).read_text()
    # A wildcard instance and a training one; the training one leaves: its domain moves.
    cluster.start("any")
    cluster.start("tc", "training")
    deadline = time.monotonic() + 20
    while cluster.shards().get("inference") != "any" or set(cluster.shards()) != {"training", "inference"}:
        assert time.monotonic() < deadline, cluster.shards()
        time.sleep(0.2)
    cluster.kill("tc", sig=15)
    deadline = time.monotonic() + 20
    while cluster.shards() != {"training": "any", "inference": "any"}:
        assert time.monotonic() < deadline, cluster.shards()
        time.sleep(0.2)
    again = cluster.submit(train, f"logs={tmp_path / 'logs2'}")
    assert cluster.wait_status(again, ("succeeded", "failed"))["status"] == "succeeded"
    assert f"execution {again}" in cluster.log("any").read_text()


def test_an_entry_delivered_too_often_goes_to_the_dead_letter_stream(cluster, tmp_path):
    wf = tmp_path / "wf.mlw"
    wf.write_text(chain_workflow(2, logs=tmp_path / "logs", seconds=0.0))
    execution_id = cluster.submit(wf)
    # A consumer that keeps crashing with it: delivered (read, then claimed again) 5 times.
    stream = "mlw:queue:default"
    [[_, [(entry_id, _)]]] = cluster.redis.xreadgroup("orchestrators", "crashy", {stream: ">"}, count=1)
    for _ in range(4):
        cluster.redis.xclaim(stream, "orchestrators", "crashy", min_idle_time=0, message_ids=[entry_id])
    cluster.start("next")  # reclaims it after 3 heartbeats idle: delivery 6 > max_deliveries 5
    final = cluster.wait_status(execution_id, ("failed", "succeeded"), timeout=30)
    assert final["status"] == "failed" and "dead-lettered" in final["error"]
    assert not runs(str(tmp_path / "logs"), "t00")
    listed = cluster.mlw("status", "--redis", cluster.redis_url).stdout
    assert "dead letters: 1" in listed and execution_id in listed
    health = json.loads(cluster.mlw("cluster", "status", "--json").stdout)
    [letter] = health["dead_letters"]
    assert letter["execution_id"] == execution_id and letter["deliveries"] == "6"
    assert health["queues"]["default"]["pending"] == 0
    text = cluster.mlw("cluster", "status").stdout
    assert "next" in text and "dead letters: 1" in text


def test_cluster_commands_need_a_redis_url_and_report_an_unreachable_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLW_REDIS_URL"}
    for args in (["cluster", "status"], ["cancel", "x"], ["submit", "wf.mlw"]):
        done = subprocess.run([MLW, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "--redis URL" in done.stderr, args
    env.update(MLW_REDIS_RETRY_MAX_S="0.3", MLW_REDIS_TIMEOUT_S="0.2")
    done = subprocess.run([MLW, "cluster", "status", "--redis", "redis://127.0.0.1:1/0"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Redis is unreachable" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_stops_claiming_finishes_the_running_execution_and_deregisters(cluster, tmp_path):
    logs = tmp_path / "logs"
    wf = tmp_path / "wf.mlw"
    wf.write_text(chain_workflow(6, logs=logs, seconds=0.3))
    proc = cluster.start("leaving")
    execution_id = cluster.submit(wf)
    deadline = time.monotonic() + 60
    while not runs(str(logs), "t01"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, 15)
    time.sleep(0.5)
    queued = cluster.submit(wf, f"logs={tmp_path / 'later'}")  # must not be claimed any more
    assert proc.wait(60) == 0
    final = cluster.execution(execution_id)
    assert final["status"] == "succeeded"
    assert all(len(runs(str(logs), f"t{i:02d}")) == 1 for i in range(6))
    assert cluster.execution(queued)["status"] == "pending"
    assert not cluster.redis.exists("mlw:instance:leaving") and not cluster.redis.exists("mlw:leader")
    assert cluster.redis.xpending("mlw:queue:default", "orchestrators")["pending"] == 0
    assert "stopping (finishing 1 running execution(s))" in cluster.log("leaving").read_text()
