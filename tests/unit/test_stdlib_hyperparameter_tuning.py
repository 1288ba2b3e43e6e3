import pytest

from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.hyperparameter_tuning import HyperparameterTuning
from stdlib_tasks.values import TrainedModel

TASK = HyperparameterTuning()


def prepare(source):
    prep = DataPreprocessing()
    return prep.run(prep.Params(source=source), {}, TaskContext()).outputs["output"]


@pytest.fixture(scope="module")
def cancer():
    return prepare("sklearn:breast_cancer")


def tune(data, **params):
    return TASK.run(TASK.Params(**params), {"data": data}, TaskContext(task_id="tune"))


TREE_SPACE = {
    "max_depth": {"type": "integer", "min": 2, "max": 8},
    "min_samples_leaf": {"type": "integer", "min": 1, "max": 20},
}


def test_tuning_is_at_least_as_good_as_the_defaults(cancer):
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    out = tune(cancer, algorithm="decision_tree", search_space=TREE_SPACE, n_trials=12, cv=3, seed=7)
    study = out.outputs["study"]
    # the defaults scored exactly as the trials are: the same folds of the training split
    folds = StratifiedKFold(3, shuffle=True, random_state=7)
    default = cross_val_score(DecisionTreeClassifier(random_state=7), cancer.X_train, cancer.y_train, cv=folds).mean()
    assert study["best_value"] >= default
    assert out.metrics["best_accuracy"] == study["best_value"]
    assert len(study["trials"]) == 12 and study["metric"] == "accuracy" and study["direction"] == "maximize"
    best = out.outputs["best_params"]
    assert set(best) == set(TREE_SPACE) and 2 <= best["max_depth"] <= 8
    model = out.outputs["model"]
    assert isinstance(model, TrainedModel)
    assert model.estimator.get_params()["max_depth"] == best["max_depth"]
    assert out.metrics["accuracy"] > 0.85  # the refitted best model on the untouched test split


def test_same_seed_same_study(cancer):
    a = tune(cancer, algorithm="decision_tree", search_space=TREE_SPACE, n_trials=5, seed=3, sampler="random")
    b = tune(cancer, algorithm="decision_tree", search_space=TREE_SPACE, n_trials=5, seed=3, sampler="random")
    assert a.outputs["study"]["trials"] == b.outputs["study"]["trials"]


def test_categorical_and_log_float_dimensions(cancer):
    out = tune(
        cancer, algorithm="logistic_regression", n_trials=4, cv=2,
        search_space={"C": {"type": "float", "min": 1e-3, "max": 10, "log": True},
                      "fit_intercept": {"type": "categorical", "choices": [True, False]}},
    )
    best = out.outputs["best_params"]
    assert 1e-3 <= best["C"] <= 10 and best["fit_intercept"] in (True, False)


def test_loss_metric_is_minimized_by_default():
    data = prepare("sklearn:diabetes")
    out = tune(data, algorithm="ridge", objective_metric="rmse", n_trials=4, cv=2,
               search_space={"alpha": {"type": "float", "min": 1e-3, "max": 100, "log": True}})
    study = out.outputs["study"]
    assert study["direction"] == "minimize"
    assert study["best_value"] == min(t["value"] for t in study["trials"])


def test_median_pruner_stops_hopeless_staged_trials(cancer):
    # fixed seed: the first trials include good learning rates, so tiny ones fall below the median
    out = tune(
        cancer, algorithm="gradient_boosting", hyperparameters={"n_estimators": 20}, n_trials=10, cv=0,
        pruner="median", seed=3,
        search_space={"learning_rate": {"type": "float", "min": 1e-4, "max": 1.0, "log": True}},
    )
    trials = out.outputs["study"]["trials"]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned and any(t["state"] == "complete" for t in trials)
    assert all(t["params"]["learning_rate"] < 0.01 for t in pruned)
    assert out.outputs["best_params"]["learning_rate"] > 0.01


def test_rejected_trial_values_fail_that_trial_only(cancer):
    out = tune(cancer, algorithm="knn", n_trials=6, cv=2, sampler="random",
               search_space={"metric": {"type": "categorical", "choices": ["euclidean", "no_such_metric"]}})
    trials = out.outputs["study"]["trials"]
    failed = [t for t in trials if t["state"] == "fail"]
    assert failed and all("no_such_metric" in str(t["params"]) for t in failed)
    assert "error" in failed[0]
    assert out.outputs["best_params"] == {"metric": "euclidean"}


def test_no_successful_trial_is_a_clear_failure(cancer):
    with pytest.raises(TaskFailed, match="no tuning trial succeeded"):
        tune(cancer, algorithm="knn", n_trials=2, cv=2,
             search_space={"metric": {"type": "categorical", "choices": ["no_such_metric"]}})


def test_objective_metric_of_the_wrong_problem(cancer):
    with pytest.raises(TaskFailed, match="'r2' cannot be computed"):
        tune(cancer, algorithm="decision_tree", objective_metric="r2", n_trials=2, cv=2, search_space=TREE_SPACE)


def test_study_timeout_stops_starting_trials(cancer):
    out = tune(cancer, algorithm="decision_tree", search_space=TREE_SPACE, n_trials=10_000, cv=2, study_timeout=0.3)
    assert 1 <= len(out.outputs["study"]["trials"]) < 10_000
