import hashlib
import json
import os

import joblib
import pytest

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


def deploy(model, tmp_path, **params):
    ctx = TaskContext(task_id="deploy", execution_id="ex1", artifact_dir=str(tmp_path / "artifacts"))
    return TASK.run(TASK.Params(**params), {"model": model}, ctx)


def test_deployment_writes_a_checksummed_artifact_and_a_record(model, tmp_path):
    out = deploy(model, tmp_path, name="iris_model", version="1.0.0", min_replicas=2, max_replicas=4)
    record = out.outputs["deployment"]
    directory = tmp_path / "artifacts" / "iris_model" / "1.0.0"
    payload = (directory / "model.joblib").read_bytes()
    assert record["sha256"] == hashlib.sha256(payload).hexdigest()
    assert json.loads((directory / "deployment.json").read_text()) == record
    assert record["uri"] == "models:/iris_model/1.0.0"
    assert record["scaling"] == {"min_replicas": 2, "max_replicas": 4}
    assert record["execution_id"] == "ex1" and record["algorithm"] == "logistic_regression"
    assert out.artifacts["model"] == str(directory / "model.joblib")
    # the artifact is the model itself
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).frame.drop(columns=["target"])
    assert (joblib.load(directory / "model.joblib").predict(rows) == model.predict(rows)).all()
    # no temporary files are left behind
    assert sorted(os.listdir(directory)) == ["deployment.json", "model.joblib"]


def test_versions_are_numbered_automatically(model, tmp_path):
    first = deploy(model, tmp_path, name="m").outputs["deployment"]
    second = deploy(model, tmp_path, name="m").outputs["deployment"]
    assert (first["version"], second["version"]) == ("v1", "v2")


def test_a_deployed_model_is_usable_by_uri(model, tmp_path):
    deploy(model, tmp_path, name="m", version="v7")
    from sklearn.datasets import load_iris

    load_iris(as_frame=True).frame.to_csv(tmp_path / "rows.csv", index=False)
    scoring = BatchInference()
    ctx = TaskContext(task_id="score", base_dir=str(tmp_path), artifact_dir=str(tmp_path / "artifacts"))
    out = scoring.run(scoring.Params(source="rows.csv", output="p.csv"), {"model": "models:/m/v7"}, ctx)
    assert out.outputs["predictions"]["rows"] == 150


def test_unknown_model_uri(tmp_path):
    with pytest.raises(TaskFailed, match="model not found: models:/nope/v1"):
        deploy("models:/nope/v1", tmp_path, name="x")


def test_alias_uri_needs_the_registry(tmp_path):
    with pytest.raises(TaskFailed, match="aliases need the model registry"):
        deploy("models:/m@champion", tmp_path, name="x")
