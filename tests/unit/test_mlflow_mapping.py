"""What execution records become in MLflow (runtime/mlflow_tracking/mapping.py): names MLflow
accepts, flattened params, references, statuses, trial rows; plus the tracking URI in force."""

from __future__ import annotations

import doctest

from mlflowdsl.runtime.mlflow_tracking import mapping, tracking_uri
from mlflowdsl.runtime.records import TaskResult
from mlflowdsl.settings import Settings


def test_doctests():
    assert doctest.testmod(mapping).failed == 0


def test_params_are_flattened_with_valid_names_and_references_written_as_outputs():
    params = {"models": [{"$ref": "train[rf].model"}, {"$ref": "train[gb].model"}],
              "hyperparameters": {"n_estimators": 40, "grid": {"depth": [1, 2]}}, "name": "a b", "x": None,
              "weird key!": 1.5, "long": "v" * 7000}
    out = mapping.flatten(params)
    assert out["models"] == '["train[rf].model","train[gb].model"]'
    assert out["hyperparameters.n_estimators"] == "40"
    assert out["hyperparameters.grid.depth"] == "[1,2]"
    assert out["name"] == "a b" and out["x"] == "null" and out["weird key_"] == "1.5"
    assert len(out["long"]) == mapping.MAX_PARAM_VALUE


def test_metrics_keep_numbers_only_and_statuses_map_to_mlflow_names():
    assert mapping.metrics_of({"auc": 0.9, "n": 3, "ok": True, "label": "x", "a/b c": 1}) == {"auc": 0.9, "n": 3.0,
                                                                                           "a/b c": 1.0}
    assert mapping.TASK_STATUS["cached"] == "FINISHED" and mapping.TASK_STATUS["skipped"] == "KILLED"
    assert mapping.EXECUTION_STATUS["cancelled"] == "KILLED"


def test_task_tags_say_cache_hit_or_miss_and_trials_mark_the_best():
    cached = TaskResult(task_id="t", status="cached", cache_key="k" * 64)
    tags = mapping.task_tags(cached, None, execution_id="e", parent_run_id="p")
    assert tags["mlw.cache"] == "hit" and tags["mlflow.parentRunId"] == "p" and tags["mlw.cache_key"] == "k" * 64
    study = {"metric": "cv_accuracy", "best_trial": 1, "trials": [
        {"number": 0, "state": "complete", "value": 0.8, "params": {"lr": 0.1}, "started": 1.0, "ended": 2.0},
        {"number": 1, "state": "complete", "value": 0.9, "params": {"lr": 0.2}, "last_step": 3, "last_reported": 0.85},
        {"number": 2, "state": "pruned", "value": None, "params": {"lr": 0.3}}]}
    trials = mapping.trials_of(TaskResult(task_id="t", status="succeeded", study=study))
    assert [t["best"] for t in trials] == [False, True, False]
    assert trials[1]["metrics"] == {"cv_accuracy": 0.9} and trials[1]["history"] == [(3, 0.85)]
    assert trials[2]["metrics"] == {} and trials[0]["started"] == 1000


def test_tracking_uri_setting_first_then_mlflows_variable_and_off_switches_it_off(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(Settings()) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(Settings()) == "http://127.0.0.1:5000"
    assert tracking_uri(Settings(mlflow_tracking_uri="http://127.0.0.1:6000")) == "http://127.0.0.1:6000"
    assert tracking_uri(Settings(mlflow_tracking_uri="off")) is None
