"""register_ml_model as the seed calls it: with no model in model_info, the orchestrator's most
recent successful training (said on stderr, with metrics); an explicit model_uri or
execution_id + task_id wins; optimize_hyperparameters' answer names the best model and the real
cause of a failure."""

from __future__ import annotations

import asyncio

import pytest
from test_stdlib_model_evaluation import fit, prepare

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.cache import open_cache
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.runtime.state.sqlite import SQLiteState
from mlflowdsl.sdk import DistributedOrchestrator
from mlflowdsl.sdk.models import model_of_task, register_ml_model
from mlflowdsl.sdk.tuning import result_of
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskOutputs

WORKFLOW = """workflow w {
  task prep: data_preprocessing { source = "sklearn:wine" }
  task train: model_training { data = prep.output  algorithm = "knn" }
  task other: model_training { data = prep.output  algorithm = "decision_tree" }
}
"""


@pytest.fixture(scope="module")
def models():
    data = prepare("sklearn:wine")
    return {"train": fit(data, "knn", "train"), "other": fit(data, "decision_tree", "other")}


def _record(settings: Settings, execution_id: str, models: dict, trained: tuple[str, ...]) -> None:
    """An execution as a run leaves it: results in the state, the models' outputs in the cache."""
    plan = compile_text(WORKFLOW, "w.mlw").raise_for_errors()
    cache = open_cache("disk", settings)
    tasks = {"prep": TaskResult(task_id="prep", status="succeeded")}
    for tid in ("train", "other"):
        key = f"{execution_id}-{tid}".encode().hex().ljust(64, "0")[:64]
        if tid in trained:
            cache.put(key, TaskOutputs(outputs={"model": models[tid]}, metrics=models[tid].metrics))
        tasks[tid] = TaskResult(task_id=tid, status="succeeded" if tid in trained else "skipped", cache_key=key)
    state = SQLiteState(settings.home_path / "state.db")
    state.save(WorkflowExecution(id=execution_id, workflow_id="w", status="succeeded",
                                 plan_json=plan.model_dump_json(), tasks=tasks))
    state.close()


@pytest.fixture()
def settings(tmp_path):
    return Settings(home=str(tmp_path / "home"))


def test_execution_and_task_name_the_model(settings, models, capsys):
    _record(settings, "exec1", models, ("train",))
    model_id = register_ml_model({"name": "wine", "execution_id": "exec1", "task_id": "train"}, settings=settings)
    assert model_id == "wine/1"
    mv = open_registry(settings).resolve("wine/1")
    assert (mv.lineage["execution_id"], mv.lineage["task_id"], mv.signature["algorithm"]) == ("exec1", "train", "knn")
    said = capsys.readouterr().err
    assert "wine/1 is the model of task train in execution exec1 (accuracy=" in said


def test_a_task_without_a_model_is_a_clear_error(settings, models):
    _record(settings, "exec1", models, ("train",))
    with pytest.raises(MlwError, match="task other of execution exec1 is skipped: it has no model"):
        model_of_task(settings, "exec1", "other")
    with pytest.raises(MlwError, match="'execution_id' and 'task_id' go together"):
        register_ml_model({"name": "wine", "execution_id": "exec1"}, settings=settings)


def test_the_orchestrator_registers_its_most_recent_training(settings, models, capsys):
    _record(settings, "exec1", models, ("other",))
    _record(settings, "exec2", models, ("train",))

    async def main():
        async with DistributedOrchestrator(settings=settings) as orchestrator:
            orchestrator.submitted.extend(["exec1", "exec2"])  # as submit_ml_workflow records them
            return await orchestrator.register_ml_model({"name": "fraud_detection_model", "version": "v1.2.0",
                                                         "model_type": "classification", "framework": "sklearn"})

    assert asyncio.run(main()) == "fraud_detection_model/1"
    mv = open_registry(settings).resolve("fraud_detection_model/v1.2.0")
    assert mv.lineage["execution_id"] == "exec2" and mv.signature["algorithm"] == "knn"
    assert "is the model of task train in execution exec2" in capsys.readouterr().err


def test_an_explicit_model_uri_wins_and_two_trainings_must_be_told_apart(settings, models):
    _record(settings, "exec3", models, ("train", "other"))
    open_registry(settings).register("wine", models["other"])

    async def main():
        async with DistributedOrchestrator(settings=settings) as orchestrator:
            orchestrator.submitted.append("exec3")
            explicit = await orchestrator.register_ml_model({"name": "copy", "model_uri": "models:/wine/1"})
            with pytest.raises(MlwError, match=r"trained 2 models \(other, train\): say which"):
                await orchestrator.register_ml_model({"name": "copy2"})
            return explicit

    assert asyncio.run(main()) == "copy/1"
    assert open_registry(settings).resolve("copy/1").signature["algorithm"] == "decision_tree"


def test_tuning_answer_names_the_best_model_and_the_real_cause():
    study = {"best_params": {"n_estimators": 12}, "best_value": 0.9, "trials": []}
    ok = WorkflowExecution(id="e1", workflow_id="w", status="succeeded", tasks={
        "train": TaskResult(task_id="train", status="succeeded", study=study)})
    assert result_of(ok, "train")["model_ref"] == {"execution_id": "e1", "task_id": "train"}
    missing = "TaskFailed: data file not found: /data/training.csv (check the path)"
    failed = WorkflowExecution(id="e2", workflow_id="w", status="failed", tasks={
        "prep": TaskResult(task_id="prep", status="failed", error=missing, ended=10.0),
        "train": TaskResult(task_id="train", status="failed", error="the study was cancelled", ended=11.0)})
    answer = result_of(failed, "train")
    assert answer["error"] == f"task prep failed: {missing}" and answer["model_ref"] is None
