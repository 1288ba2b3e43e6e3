"""A study killed halfway resumes with its finished trials (Optuna's journal on real Redis),
and the seed's ``optimize_hyperparameters``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from mlflowdsl.settings import Settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.test_tuning_runtime import WORKFLOW, tune_block  # noqa: E402

DRIVER = """
import sys
from mlflowdsl.compiler.api import compile_file
from mlflowdsl.runtime.api import resume, run_plan
from mlflowdsl.settings import Settings
settings = Settings(home=sys.argv[2], scheduler=sys.argv[3], redis_url=sys.argv[4])
if sys.argv[1] == "run":
    plan = compile_file(sys.argv[5]).raise_for_errors()
    run_plan(plan, settings, execution_id="resumable1")
else:
    print(resume("resumable1", settings).status)
"""


def completed(redis_url: str) -> list:
    from optuna.storages.journal import JournalRedisBackend

    try:
        # a fresh storage each time: the test's process must not keep a replay of a flushed Redis
        study = optuna.load_study(study_name="mlw:resumable1:train", storage=optuna.storages.JournalStorage(
            JournalRedisBackend(redis_url, prefix="mlw-optuna:")))
    except KeyError:
        return []
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_a_killed_study_resumes_with_its_finished_trials(tmp_path, dask_cluster, redis_url):
    wf = tmp_path / "tuned.mlw"
    wf.write_text(WORKFLOW.format(tune=tune_block(trials=8, parallel=1, seed=2)))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    args = [str(tmp_path / "home"), dask_cluster.address, redis_url]
    proc = subprocess.Popen([sys.executable, str(script), "run", *args, str(wf)], env=env, cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while len(completed(redis_url)) < 3:
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no trials completed in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    before = {t.number: t.value for t in completed(redis_url)}
    assert 3 <= len(before) < 8

    done = subprocess.run([sys.executable, str(script), "resume", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().endswith("succeeded"), done.stdout + done.stderr
    from mlflowdsl.runtime.api import load_execution

    study = load_execution("resumable1", Settings(home=args[0], redis_url=redis_url)).tasks["train"].study
    rows = {r["number"]: r for r in study["trials"]}
    # the finished trials carried over unchanged, and the budget counts each trial once
    assert all(rows[n]["state"] == "complete" and rows[n]["value"] == v for n, v in before.items())
    counted = [r for r in study["trials"] if not r.get("stale") and r["state"] in ("complete", "pruned", "fail")]
    assert len(counted) == 8
    assert study["trainings"] <= 8 - len(before) + 1  # only the rest trained (plus the best, if it was old)


SEED_SPEC = {"workflow_id": "hpo", "name": "hpo", "tasks": [
        {"task_id": "prep", "task_type": "data_preprocessing", "parameters": {"dataset_path": "sklearn:iris"}},
        {"task_id": "train", "task_type": "model_training", "dependencies": ["prep"],
         "parameters": {"algorithm": "random_forest", "hyperparameters": {"n_estimators": 5}}}]}
SEED_CONFIG = {"search_space": {"n_estimators": {"type": "integer", "min": 10, "max": 40},
                                "max_depth": {"type": "integer", "min": 1, "max": 4}},
               "max_trials": 4, "objective_metric": "accuracy", "seed": 1, "parallel": 2}


def check_seed_result(result: dict) -> None:
    assert result["status"] == "succeeded", result["error"]
    assert len(result["trials"]) == 4
    assert set(result["best_params"]) == {"n_estimators", "max_depth"}
    assert 10 <= result["best_params"]["n_estimators"] <= 40
    assert result["best_value"] == max(t["value"] for t in result["trials"])
    assert result["execution_id"]


def test_seed_optimize_hyperparameters_embedded(tmp_path):
    from mlflowdsl import DistributedOrchestrator

    async def go():
        settings = Settings(home=str(tmp_path / "home"), local_workers=1)
        async with DistributedOrchestrator(settings=settings) as orchestrator:
            return await orchestrator.optimize_hyperparameters({"workflow_spec": SEED_SPEC,
                                                                "hyperparameter_config": SEED_CONFIG})

    check_seed_result(asyncio.run(go()))


def test_seed_optimize_hyperparameters_in_cluster_mode_keeps_the_study_on_redis(tmp_path, redis_url, dask_cluster):
    from mlflowdsl import DistributedOrchestrator

    settings = Settings(home=str(tmp_path / "home"), heartbeat_s=0.5, leader_lease_s=1.5, leader_renew_s=0.4)

    async def go():
        async with DistributedOrchestrator(redis_url=redis_url, scheduler=dask_cluster.address,
                                           settings=settings) as orchestrator:
            return await orchestrator.optimize_hyperparameters({"workflow_spec": SEED_SPEC,
                                                                "hyperparameter_config": SEED_CONFIG})

    result = asyncio.run(go())
    check_seed_result(result)
    from optuna.storages.journal import JournalRedisBackend

    study = optuna.load_study(study_name=f"mlw:{result['execution_id']}:train",
                              storage=optuna.storages.JournalStorage(JournalRedisBackend(redis_url, prefix="mlw-optuna:")))
    assert len(study.trials) == 4 and study.best_value == result["best_value"]
    assert not (tmp_path / "home" / "studies").exists()  # nothing in the embedded journal directory
