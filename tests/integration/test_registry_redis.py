"""The registry on real Redis: atomic version numbers and alias moves under two concurrent
promoter processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlflowdsl.runtime.registry import Gate, GateRefused, open_registry
from mlflowdsl.settings import Settings
from registry_support import fitted

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@pytest.fixture()
def registry(tmp_path, redis_url):
    reg = open_registry(Settings(home=str(tmp_path / "home"), redis_url=redis_url))
    yield reg
    reg.close()


def test_register_resolve_promote_on_redis(registry):
    v1 = registry.register("fraud", fitted(0.9), lineage={"execution_id": "e1"})
    v2 = registry.register("fraud", fitted(0.8), label="v2.0")
    assert (v1.version, v2.version) == (1, 2)
    assert registry.resolve("models:/fraud/v2.0").version == 2
    registry.promote(v1, "champion")
    with pytest.raises(GateRefused, match="accuracy = 0.8000 vs champion"):
        registry.promote(v2, "champion", gate=Gate())
    assert registry.resolve("models:/fraud@champion").lineage == {"execution_id": "e1"}
    assert list(registry.load("fraud@champion").predict([{"x": 3.0}])) == [1]


def test_alias_moves_are_atomic_under_two_promoters(registry, tmp_path, redis_url):
    for accuracy in (0.5, 0.6, 0.7, 0.8):
        registry.register("fraud", fitted(accuracy))
    count = 150
    argv = [sys.executable, str(HERE / "registry_promoter.py"), str(tmp_path / "home"), redis_url, str(count)]
    procs = [subprocess.Popen([*argv, "1", "2"], cwd=REPO), subprocess.Popen([*argv, "3", "4"], cwd=REPO)]
    try:
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    history = registry.history("fraud")
    assert len(history) == 2 * count
    # Every move saw the move before it: the chain of previous -> version has no gap or fork.
    assert history[0].previous is None
    for before, after in zip(history, history[1:]):
        assert after.previous == before.version
    assert registry.aliases("fraud") == {"champion": history[-1].version}
    # Both promoters really interleaved (otherwise the test proves nothing about concurrency).
    owners = [h.by for h in history]
    switches = sum(1 for a, b in zip(owners, owners[1:]) if a != b)
    assert switches >= 2


def test_deployment_records_live_in_redis(registry, tmp_path, redis_url):
    from mlflowdsl.runtime.coordination.gateway import RedisGateway
    from mlflowdsl.runtime.registry import deployments
    from registry_support import http

    settings = Settings(home=str(tmp_path / "home"), redis_url=redis_url)
    registry.register("fraud", fitted(0.9))
    record = deployments.deploy(settings, "models:/fraud/1", {"scaling_config": {"min_replicas": 1}})
    try:
        assert http("POST", record["endpoint"] + "/predict", [{"x": 3.0}])[1]["predictions"] == [1]
        gateway = RedisGateway(redis_url)
        stored = gateway.call(lambda r: r.hget("mlw:registry:deployments", "fraud"))
        assert stored is not None and b'"state": "running"' in stored
        assert not (tmp_path / "home" / "registry.db").exists()  # nothing went to SQLite
    finally:
        assert deployments.stop(settings, "fraud")["state"] == "stopped"
    assert not deployments.pid_alive(record["pid"])


def test_mlw_models_reads_the_redis_registry(registry, tmp_path, redis_url):
    import json

    from click.testing import CliRunner

    from mlflowdsl.cli import cli

    registry.register("fraud", fitted(0.9), lineage={"execution_id": "exec-redis"})
    registry.register("fraud", fitted(0.8))
    args = ["--home", str(tmp_path / "home"), "--redis", redis_url]
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "promote", "fraud", "1", "--alias", "champion", *args]).exit_code == 0
    refused = runner.invoke(cli, ["models", "promote", "fraud", "2", "--alias", "champion", *args])
    assert refused.exit_code == 1 and "accuracy = 0.8000 vs champion (fraud/1) 0.9000" in refused.output
    listed = json.loads(runner.invoke(cli, ["models", "ls", "--json", *args]).output)
    assert [(m["id"], m["aliases"], m["lineage"].get("execution_id")) for m in listed] == [
        ("fraud/1", ["champion"], "exec-redis"), ("fraud/2", [], None)]
