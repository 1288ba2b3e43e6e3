"""Search spaces, samplers, the JSON config form and trial keys (tasks/search.py, runtime/tuning/, sdk/tuning.py)."""

from __future__ import annotations

import optuna
import pytest

from mlflowdsl.ir import Objective, SearchDim, Task, Tuning, key_part
from mlflowdsl.runtime.keys import tuned_key_part
from mlflowdsl.runtime.tuning import check_objective, merge_values
from mlflowdsl.sdk.tuning import plan_with_tuning, tuning_from_config
from mlflowdsl.tasks.search import (
    TuningError, dims_from_dict, distributions, grid_size, grid_space, make_pruner, make_sampler,
)


def test_the_json_form_becomes_dimensions():
    dims = dims_from_dict({"n_estimators": {"type": "integer", "min": 10, "max": 100},
                           "learning_rate": {"type": "float", "min": 1e-3, "max": 0.3, "log": True},
                           "criterion": {"type": "categorical", "choices": ["gini", "entropy"]}})
    by = {d.name: d for d in dims}
    assert by["n_estimators"].kind == "int" and (by["n_estimators"].low, by["n_estimators"].high) == (10, 100)
    assert by["learning_rate"].log and by["criterion"].choices == ["gini", "entropy"]


@pytest.mark.parametrize("space, words", [
    ({"n": {"type": "integer", "min": 10, "max": 1}}, "greater than max"),
    ({"c": {"type": "categorical", "choices": []}}, "non-empty"),
    ({"lr": {"type": "float", "min": 0, "max": 1, "log": True}}, "log scale"),
    ({"n": {"type": "matrix", "min": 0, "max": 1}}, "unknown type"),
    ({}, "non-empty"),
])
def test_bad_seed_spaces_are_refused_with_the_dimension_named(space, words):
    with pytest.raises(TuningError) as err:
        dims_from_dict(space)
    assert words in str(err.value)


def test_sampled_values_stay_in_the_space_for_every_sampler():
    dims = [SearchDim(name="d", kind="int", low=1, high=3),
            SearchDim(name="x", kind="float", low=0.1, high=0.3, step=0.1),
            SearchDim(name="c", kind="choice", choices=["a", "b"])]
    for kind in ("tpe", "random", "cmaes", "grid"):
        study = optuna.create_study(sampler=make_sampler(kind, 1, dims))
        for _ in range(6):
            trial = study.ask(distributions(dims))
            p = trial.params
            assert p["d"] in (1, 2, 3) and p["c"] in ("a", "b") and 0.1 - 1e-9 <= p["x"] <= 0.3 + 1e-9
            study.tell(trial, float(p["d"]))


def test_grid_space_enumerates_steps():
    dims = [SearchDim(name="x", kind="float", low=0.5, high=1.0, step=0.25),
            SearchDim(name="d", kind="int", low=2, high=6, step=2)]
    assert grid_space(dims) == {"x": [0.5, 0.75, 1.0], "d": [2, 4, 6]}
    assert grid_size(dims) == 9
    with pytest.raises(TuningError):
        grid_space([SearchDim(name="y", kind="float", low=0, high=1)])


def test_pruners():
    assert isinstance(make_pruner("median", 20), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband", 20), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none", 20), optuna.pruners.NopPruner)


def test_trial_key_is_that_of_the_task_written_with_the_values():
    params = {"algorithm": "gradient_boosting", "hyperparameters": {"n_estimators": 40}}
    task = Task(id="train", type="model_training", params=params,
                key_part=key_part("model_training", "1", None, params, ""))
    trial = merge_values(task, {"max_depth": 3})
    written = {"algorithm": "gradient_boosting", "hyperparameters": {"n_estimators": 40, "max_depth": 3}}
    assert trial.key_part == key_part("model_training", "1", None, written, "")
    assert merge_values(task, {"max_depth": 4}).key_part != trial.key_part
    # the same values again: the same key (a cache hit, not a retrain)
    assert merge_values(task, {"max_depth": 3}).key_part == trial.key_part


def test_tuned_task_key_differs_from_the_untuned_task():
    task = Task(id="t", type="model_training", key_part="abc")
    tuning = Tuning(task="t", search=[SearchDim(name="d", kind="int", low=1, high=3)],
                    objective=Objective(direction="maximize", metric="accuracy"))
    assert tuned_key_part(task, tuning) != "abc"
    assert tuned_key_part(task, tuning.model_copy(update={"trials": 5})) != tuned_key_part(task, tuning)


def test_training_score_objective_is_refused():
    with pytest.raises(TuningError) as err:
        check_objective(Objective(direction="maximize", metric="train_accuracy"))
    assert "training-set score" in str(err.value) and "cv_accuracy" in (err.value.hint or "")


def test_seed_config_defaults_and_unknown_keys():
    t = tuning_from_config({"search_space": {"n": {"type": "integer", "min": 1, "max": 5}}, "max_trials": 7,
                            "objective_metric": "log_loss"}, "train", "accuracy")
    assert (t.trials, t.objective.metric, t.objective.direction, t.sampler) == (7, "log_loss", "minimize", "tpe")
    with pytest.raises(TuningError, match="unknown key"):
        tuning_from_config({"search_space": {"n": {"type": "integer", "min": 1, "max": 5}}, "trails": 3}, "t", "a")


def _spec(n_train: int = 1) -> dict:
    tasks = [{"task_id": "prep", "task_type": "data_preprocessing", "parameters": {"dataset_path": "sklearn:iris"}}]
    for i in range(n_train):
        tasks.append({"task_id": f"train{i}", "task_type": "model_training", "dependencies": ["prep"],
                      "parameters": {"algorithm": "random_forest"}})
    return {"workflow_id": "w", "name": "w", "tasks": tasks}


def test_seed_request_finds_the_training_task_and_checks_names():
    config = {"search_space": {"n_estimators": {"type": "integer", "min": 10, "max": 50}}, "max_trials": 3}
    plan, tid = plan_with_tuning(_spec(), config)
    assert tid == "train0" and plan.tuning_for("train0").trials == 3
    with pytest.raises(TuningError, match="not hyperparameter"):
        plan_with_tuning(_spec(), {**config, "search_space": {"n_trees": {"type": "integer", "min": 1, "max": 2}}})
    with pytest.raises(TuningError, match="2 model_training tasks"):
        plan_with_tuning(_spec(2), config)
    plan, tid = plan_with_tuning(_spec(2), {**config, "task_id": "train1"})
    assert tid == "train1"
