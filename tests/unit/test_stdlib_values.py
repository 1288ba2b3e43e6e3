import json
import pickle

import numpy as np
import pandas as pd
import pytest

from mlflowdsl.tasks import TaskContext, TaskPruned, registry
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining
from stdlib_tasks.values import Dataset, MissingColumns, TrainedModel, fingerprint_arrays


@pytest.fixture(scope="module")
def trained():
    prep, train = DataPreprocessing(), ModelTraining()
    data = prep.run(prep.Params(source="sklearn:iris"), {}, TaskContext()).outputs["output"]
    model = train.run(train.Params(algorithm="knn"), {"data": data}, TaskContext(task_id="t")).outputs["model"]
    return data, model


def test_values_survive_pickling(trained):
    data, model = trained
    data2, model2 = pickle.loads(pickle.dumps((data, model)))
    assert isinstance(data2, Dataset) and data2.fingerprint == data.fingerprint
    assert (data2.X_test == data.X_test).all()
    assert isinstance(model2, TrainedModel)
    assert (model2.predict_features(data.X_test) == model.predict_features(data.X_test)).all()


def test_small_reprs(trained):
    data, model = trained
    assert repr(data) == "Dataset(problem='classification', target='target', train=120, test=30, features=4)"
    assert repr(model).startswith("TrainedModel('t', classification, metrics={'accuracy':")
    assert len(repr(model)) < 150


def test_predict_accepts_frames_dicts_and_arrays(trained):
    _, model = trained
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns=["target"]).head(6)
    expected = model.predict(frame)
    assert (model.predict(frame.to_dict("records")) == expected).all()
    assert (model.predict(frame.to_numpy()) == expected).all()
    assert (model.predict(frame[frame.columns[::-1]]) == expected).all()  # column order does not matter
    assert model.predict(frame.to_numpy()[0]).shape == (1,)
    with pytest.raises(MissingColumns, match="petal width"):
        model.predict(frame.drop(columns=["petal width (cm)"]))


def test_fingerprint_depends_on_content():
    a = np.arange(6.0).reshape(2, 3)
    assert fingerprint_arrays(a) == fingerprint_arrays(a.copy())
    assert fingerprint_arrays(a) != fingerprint_arrays(a.T.copy())
    assert fingerprint_arrays(np.array(["x", "y"], dtype=object)) != fingerprint_arrays(np.array(["x", "z"], dtype=object))
    assert fingerprint_arrays(pd.Series([1, 2])) == fingerprint_arrays(np.array([1, 2]))


def test_pruned_error_keeps_its_step_across_processes():
    err = pickle.loads(pickle.dumps(TaskPruned("stopped early", step=30)))
    assert err.step == 30 and err.retryable is False and str(err) == "stopped early"


STANDARD = ["data_preprocessing", "feature_extraction", "model_training", "model_validation",
            "hyperparameter_tuning", "model_deployment", "batch_inference", "model_evaluation", "custom"]


@pytest.mark.parametrize("name", STANDARD)
def test_parameter_json_schemas_render(name):
    schema = registry()[name].Params.model_json_schema()
    json.dumps(schema)
    if name != "custom":
        assert schema.get("additionalProperties") is False
