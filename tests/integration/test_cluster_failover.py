"""Failover: SIGKILL the instance running a 20-task workflow halfway; another instance
finishes it from the state in Redis without rerunning committed tasks. And a Redis restart
mid-run (with AOF persistence) loses nothing committed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import find_redis_binary, free_port, spawn, stop_group, wait_until  # noqa: E402
from mlflowdsl.runtime.cache.disk import DiskCache  # noqa: E402
from mlflowdsl.runtime.cache.hmac_key import read_or_create_key_file  # noqa: E402
from tests.integration.cluster_support import MLW, Cluster, chain_workflow  # noqa: E402
from tests.integration.tasks_for_tests import runs  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _committed(data: dict) -> set[str]:
    return {t for t, r in data["tasks"].items() if r["status"] in ("succeeded", "cached")}


def _committed_now(cluster: Cluster, execution_id: str) -> set[str]:
    """Straight from Redis (an `mlw status` process takes too long to start on a busy machine)."""
    statuses = cluster.redis.hgetall(f"mlw:exec:{execution_id}:tstatus")
    return {t.decode() for t, s in statuses.items() if s in (b"succeeded", b"cached")}


def test_sigkill_of_the_running_instance_resumes_elsewhere_without_rerunning(tmp_path, redis_url, dask_cluster):
    cluster = Cluster(tmp_path, redis_url, dask_cluster.address)
    try:
        logs = tmp_path / "logs"
        wf = tmp_path / "wf.mlw"
        wf.write_text(chain_workflow(20, logs=logs, seconds=0.25))
        cluster.start("first")
        cluster.start("second")  # both up before the run: starting a process takes seconds
        execution_id = cluster.submit(wf)
        deadline = time.monotonic() + 60
        while len(_committed_now(cluster, execution_id)) < 8:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        [owner] = [c["name"].decode() for c in
                   cluster.redis.xpending("mlw:queue:default", "orchestrators")["consumers"]]
        other = "second" if owner == "first" else "first"
        cluster.kill(owner, sig=signal.SIGKILL)
        committed_at_kill = _committed_now(cluster, execution_id)
        assert 8 <= len(committed_at_kill) < 20
        done = cluster.wait_status(execution_id, ("succeeded", "failed"), timeout=120)
        assert done["status"] == "succeeded"
        assert f"resuming execution {execution_id}" in cluster.log(other).read_text()
        for tid in committed_at_kill:
            assert len(runs(str(logs), tid)) == 1, f"{tid} was committed before the kill but ran again"
        assert all(len(runs(str(logs), f"t{i:02d}")) >= 1 for i in range(20))
        for i in range(1, 20):  # no task started before its dependency had finished
            first_end = min(r["end"] for r in runs(str(logs), f"t{i - 1:02d}"))
            assert all(r["start"] >= first_end for r in runs(str(logs), f"t{i:02d}")), f"t{i:02d}"
        # The same workflow undisturbed (`mlw run` with a fresh home: a cache of its own) computes
        # the same outputs under the same cache keys.
        calm_env = dict(cluster.env, MLW_HOME=str(tmp_path / "calm-home"))
        calm = subprocess.run([MLW, "run", str(wf), "--json"], env=calm_env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert calm.returncode == 0, calm.stderr
        undisturbed = json.loads(calm.stdout)["tasks"]
        disturbed_cache, calm_cache = (DiskCache(tmp_path / home / "cache", read_or_create_key_file(tmp_path / home / "cache_hmac.key"))
                                       for home in ("home", "calm-home"))
        for tid, r in done["tasks"].items():
            assert r["status"] in ("succeeded", "cached") and undisturbed[tid]["status"] == "succeeded"
            key = r["cache_key"]
            (hit_a, value_a), (hit_b, value_b) = disturbed_cache.get(key), calm_cache.get(key)
            assert hit_a and hit_b and value_a.outputs == value_b.outputs, tid
    finally:
        cluster.close()


@pytest.fixture
def persistent_redis(tmp_path):
    """A Redis of our own with AOF fsync always: the persistence the guarantee needs."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data = tmp_path / "redis-data"
    data.mkdir()
    argv = [find_redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--dir", str(data)]
    procs = []

    def start():
        import redis

        proc = spawn(argv, tmp_path / "redis.log", cwd=data)
        procs.append(proc)
        wait_until(lambda: redis.Redis.from_url(url).ping(), timeout=20, what="redis", log=tmp_path / "redis.log")

    def stop():
        stop_group(procs[-1])

    start()
    yield url, start, stop
    for proc in procs:
        stop_group(proc)


def test_redis_restart_mid_run_loses_nothing_committed(tmp_path, persistent_redis, dask_cluster):
    url, start_redis, stop_redis = persistent_redis
    cluster = Cluster(tmp_path, url, dask_cluster.address)
    try:
        logs = tmp_path / "logs"
        wf = tmp_path / "wf.mlw"
        wf.write_text(chain_workflow(12, logs=logs, seconds=0.3))
        cluster.start("steady")
        cluster.start("spare")  # would reclaim the execution if the owner did not hold on to it
        execution_id = cluster.submit(wf)
        deadline = time.monotonic() + 60
        while len(_committed_now(cluster, execution_id)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        before = _committed_now(cluster, execution_id)
        stop_redis()
        time.sleep(2.0)  # tasks go on finishing while Redis is away
        start_redis()
        done = cluster.wait_status(execution_id, ("succeeded", "failed"), timeout=120)
        assert done["status"] == "succeeded", done
        assert before <= _committed(done) and len(_committed(done)) == 12
        for i in range(12):  # nothing ran twice: the owner kept its execution through the outage
            assert len(runs(str(logs), f"t{i:02d}")) == 1
        logs_text = {name: cluster.log(name).read_text() for name in ("steady", "spare")}
        [owner] = [name for name, text in logs_text.items() if f"starting execution {execution_id}" in text]
        assert "Redis unavailable" in logs_text[owner] or "deferred" in logs_text[owner]
        assert "resuming" not in "".join(logs_text.values())
        assert all(proc.poll() is None for proc in cluster.procs.values())  # still serving
    finally:
        cluster.close()


def test_an_instance_outlives_a_redis_that_restarts_empty(tmp_path, redis_server, redis_url, dask_cluster):
    """Without persistence the queue and records are gone (documented), but the instance goes
    on: it registers again, recreates the consumer group and runs new submissions."""
    cluster = Cluster(tmp_path, redis_url, dask_cluster.address)
    try:
        wf = tmp_path / "wf.mlw"
        wf.write_text(chain_workflow(2, logs=tmp_path / "logs", seconds=0.0))
        cluster.start("survivor")
        first = cluster.submit(wf)
        assert cluster.wait_status(first, ("succeeded", "failed"))["status"] == "succeeded"
        redis_server.stop()
        time.sleep(1.5)
        redis_server.start()
        wait_until(lambda: cluster.redis.exists("mlw:instance:survivor"), timeout=30, what="re-registration")
        second = cluster.submit(wf, f"logs={tmp_path / 'after'}")
        assert cluster.wait_status(second, ("succeeded", "failed"), timeout=60)["status"] == "succeeded"
        assert cluster.procs["survivor"].poll() is None
    finally:
        cluster.close()
