"""Cluster mode keeps records in Redis: `mlw report`, `mlw explain` and `mlw status` read them
with `--redis URL`, resource use and key components included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mlflowdsl.ir import CachePolicy, Plan, Task, Workflow, key_part  # noqa: E402
from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.runtime.state.redis import RedisState  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402

pytestmark = pytest.mark.integration
FN = "tests.integration.observe_tasks"
MLW = str(Path(sys.executable).parent / "mlw")


def _plan(seconds: float) -> Plan:
    def task(id, deps=(), **params):
        uses = f"{FN}:burn"
        t = Task(id=id, type="custom", uses=uses, dependencies=list(deps), params=params,
                 cache=CachePolicy(strategy="disk"))
        return t.model_copy(update={"key_part": key_part("custom", "1", uses, params, "")})

    return Plan(workflow=Workflow(id="redis_observe"),
                tasks=[task("a", seconds=seconds, mb=30), task("b", ["a"], seconds=0.01)]).with_fingerprint()


def test_report_explain_and_status_read_the_cluster_state(tmp_path, redis_url, dask_cluster):
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address, redis_url=redis_url)
    state = RedisState.from_settings(settings)
    try:
        first = run_plan(_plan(0.05), settings, state=state, base_dir=str(tmp_path))
        second = run_plan(_plan(0.06), settings, state=state, base_dir=str(tmp_path))
    finally:
        state.close()
    assert first.status == second.status == "succeeded"
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"))

    def mlw(*args):
        return subprocess.run([MLW, *args, "--redis", redis_url], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    explained = json.loads(mlw("explain", second.id, "a", "--format", "json").stdout)
    assert explained["outcome"] == "miss" and explained["previous_execution"] == first.id
    assert [(c["field"], c["old"], c["new"]) for c in explained["changes"]] == [("params.seconds", 0.05, 0.06)]

    done = mlw("report", second.id, "-o", "cluster.html")
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "cluster.html").read_text()
    assert 'data-task="a"' in html and 'data-task="b"' in html and "MiB" in html

    shown = json.loads(mlw("status", second.id, "--json").stdout)
    assert shown["tasks"]["a"]["peak_rss"] >= 30 * 1024 * 1024 and shown["tasks"]["a"]["cpu_s"] > 0
    assert [u["attempt"] for u in shown["tasks"]["a"]["usage"]] == [1]

    local = subprocess.run([MLW, "report", second.id, "-o", "x.html"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert local.returncode == 1 and "no execution" in local.stderr  # without --redis: the local state
