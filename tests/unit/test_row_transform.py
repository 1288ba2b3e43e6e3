"""Feature steps that travel with the model: a `@row_transform` custom step's output dataset
carries the function in its transform, so the trained model scores raw rows, even where the
user's module cannot be imported (its code is kept by value)."""

from __future__ import annotations

import pickle
import sys
import textwrap

import pandas as pd
import pytest

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.tasks import TaskContext, TaskFailed
from mlflowdsl.tasks.custom import Custom
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining

RAW = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] * 5,
                    "b": [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 7.0] * 5,
                    "y": [0, 1, 0, 1, 0, 1, 0, 1] * 5})


@pytest.fixture()
def steps(tmp_path, monkeypatch):
    """A user module `fe_user_steps` next to the workflow, importable while the test runs."""
    (tmp_path / "fe_user_steps.py").write_text(textwrap.dedent('''
        from mlflowdsl.tasks import row_transform

        def _ratio(a, b):  # a helper of the module: travels with the function
            return a / b

        @row_transform
        def add_ratio(features, scale: float = 1.0):
            out = features.copy()
            out["ratio"] = _ratio(out["a"], out["b"]) * scale
            return out

        @row_transform
        def drop_rows(features):
            return features.iloc[:1]
    '''))
    (tmp_path / "train.csv").write_text(RAW.to_csv(index=False))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fe_user_steps", None)


def _dataset(tmp_path):
    prep = DataPreprocessing()
    params = prep.Params(source=str(tmp_path / "train.csv"), target="y", scale="none")
    return prep.run(params, {}, TaskContext(base_dir=str(tmp_path))).outputs["output"]


def test_the_step_is_a_dataset_task_and_its_model_scores_raw_rows(steps, monkeypatch):
    plan = compile_text('''workflow w {
  task prep: data_preprocessing { source = "train.csv"  target = "y"  scale = "none" }
  task fe: custom { uses = "fe_user_steps:add_ratio"  features = prep.output  scale = 2.0 }
  task train: model_training { data = fe.output  algorithm = "logistic_regression" }
}''', str(steps / "w.mlw")).raise_for_errors()
    assert plan.task("train").params["data"] == {"$ref": "fe.output"}

    data = _dataset(steps)
    out = Custom().run_function("fe_user_steps:add_ratio", {"scale": 2.0}, {"features": data}, TaskContext())
    featured = out.outputs["output"]
    assert featured.feature_names == (*data.feature_names, "ratio")
    train = ModelTraining()
    model = train.run(train.Params(algorithm="logistic_regression"), {"data": featured},
                      TaskContext(task_id="train")).outputs["model"]

    # as a deployment's server loads it: the user's module is not importable there
    blob = pickle.dumps(model)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(steps)])
    sys.modules.pop("fe_user_steps", None)
    loaded = pickle.loads(blob)
    raw = RAW.drop(columns=["y"]).head(3)
    assert list(loaded.features_of(raw)[:, -1]) == pytest.approx(list(raw["a"] / raw["b"] * 2.0))
    assert list(loaded.predict(raw)) == list(model.predict(raw))
    assert "fe_user_steps" not in sys.modules


def test_a_step_that_drops_rows_is_a_clear_task_failure(steps):
    with pytest.raises(TaskFailed, match="returned 1 rows for .*one row per input row"):
        Custom().run_function("fe_user_steps:drop_rows", {}, {"features": _dataset(steps)}, TaskContext())
