import hashlib
import os

import joblib
import pytest

from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.runtime.registry.services import RegistryServices
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.batch_inference import BatchInference
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_deployment import ModelDeployment
from stdlib_tasks.model_training import ModelTraining

TASK = ModelDeployment()


@pytest.fixture(scope="module")
def model():
    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source="sklearn:iris"), {}, TaskContext()).outputs["output"]
    out = train.run(train.Params(algorithm="logistic_regression"), {"data": data}, TaskContext(task_id="train"))
    return out.outputs["model"]


def context(tmp_path, task_id="deploy", execution_id="ex1"):
    return TaskContext(task_id=task_id, execution_id=execution_id, base_dir=str(tmp_path),
                       artifact_dir=str(tmp_path / "home" / "artifacts" / execution_id),
                       services=RegistryServices(Settings(home=str(tmp_path / "home"))))


def deploy(model, tmp_path, **params):
    return TASK.run(TASK.Params(**params), {"model": model}, context(tmp_path))


def test_deployment_registers_a_checksummed_artifact_with_lineage(model, tmp_path):
    out = deploy(model, tmp_path, name="iris_model", version="1.0.0", min_replicas=2, max_replicas=4)
    record = out.outputs["deployment"]
    path = tmp_path / "home" / "models" / "iris_model" / "1" / "model.joblib"
    assert record["model_path"] == str(path) and out.artifacts["model"] == str(path)
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (record["uri"], record["label"], record["version"]) == ("models:/iris_model/1", "1.0.0", 1)
    assert record["scaling"] == {"min_replicas": 2, "max_replicas": 4}
    assert record["execution_id"] == "ex1" and record["algorithm"] == "logistic_regression"
    assert record["state"] == "registered" and record["endpoint"] is None  # serve defaults to false
    registry = open_registry(Settings(home=str(tmp_path / "home")))
    mv = registry.resolve("models:/iris_model/1.0.0")
    assert mv.lineage["execution_id"] == "ex1" and mv.lineage["task_id"] == "deploy"
    assert mv.lineage["dataset_fingerprint"] == model.dataset_fingerprint
    assert mv.model_type == "classification" and mv.framework == "sklearn" and mv.metrics == model.metrics
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).frame.drop(columns=["target"])
    assert (joblib.load(path).predict(rows) == model.predict(rows)).all()
    assert sorted(os.listdir(path.parent)) == ["model.joblib"]  # no temporary files left behind


def test_versions_are_numbered_automatically(model, tmp_path):
    import dataclasses

    first = deploy(model, tmp_path, name="m").outputs["deployment"]
    again = deploy(model, tmp_path, name="m").outputs["deployment"]  # an unchanged re-run: the same bytes
    changed = dataclasses.replace(model, metrics={**model.metrics, "accuracy": 0.0})
    second = deploy(changed, tmp_path, name="m").outputs["deployment"]
    assert (first["version"], again["version"], second["version"]) == (1, 1, 2)
    assert (first["label"], second["uri"]) == (None, "models:/m/2")


def test_a_rerun_with_the_same_label_is_idempotent(model, tmp_path):
    first = deploy(model, tmp_path, name="m", version="v1.2.0").outputs["deployment"]
    again = deploy(model, tmp_path, name="m", version="v1.2.0").outputs["deployment"]
    assert again["version"] == first["version"] == 1


@pytest.mark.parametrize("uri", ["models:/m/v7", "models:/m/1", "models:/m@champion", "models:/m"])
def test_a_registered_model_is_usable_by_uri(model, tmp_path, uri):
    deploy(model, tmp_path, name="m", version="v7", alias="champion")
    from sklearn.datasets import load_iris

    load_iris(as_frame=True).frame.to_csv(tmp_path / "rows.csv", index=False)
    scoring = BatchInference()
    out = scoring.run(scoring.Params(source="rows.csv", output="p.csv"), {"model": uri}, context(tmp_path, "score"))
    assert out.outputs["predictions"]["rows"] == 150


def test_unknown_model_uri(tmp_path):
    with pytest.raises(TaskFailed, match="model not found: models:/nope/1: no registered model nope/1"):
        deploy("models:/nope/1", tmp_path, name="x")


def test_unknown_alias_says_how_to_promote(model, tmp_path):
    deploy(model, tmp_path, name="m")
    with pytest.raises(TaskFailed, match="model 'm' has no alias 'champion'") as info:
        deploy("models:/m@champion", tmp_path, name="x")
    assert "mlw models promote m VERSION --alias ALIAS" in info.value.hint


def test_alias_promotion_is_gated_against_the_holder(model, tmp_path):
    from dataclasses import replace

    first = deploy(model, tmp_path, name="m", alias="champion", better_than="champion").outputs["deployment"]
    assert first["alias"] == "champion" and "no champion" in first["gate"][0]["message"]
    worse = replace(model, metrics={**model.metrics, "accuracy": model.metrics["accuracy"] - 0.1})
    with pytest.raises(TaskFailed, match=r"promotion of m/2 to @champion refused: accuracy = .* below min_delta 0 by 0.1000"):
        deploy(worse, tmp_path, name="m", alias="champion", better_than="champion")
    registry = open_registry(Settings(home=str(tmp_path / "home")))
    assert registry.aliases("m") == {"champion": 1}  # refused: the alias did not move
    assert [mv.version for mv in registry.versions("m")] == [1, 2]  # but the version is registered


@pytest.mark.parametrize("params, message", [
    ({"name": "../x"}, "not a safe name"),
    ({"name": "m", "version": "3"}, "bare number"),
    ({"name": "m", "better_than": "champion"}, "set alias too"),
    ({"name": "m", "min_replicas": 3, "max_replicas": 2}, "greater than max_replicas"),
    ({"name": "m", "compare": ["acuracy"]}, "acuracy"),
])
def test_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        TASK.Params(**params)
