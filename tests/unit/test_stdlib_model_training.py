import numpy as np
import pytest

from mlflowdsl.tasks import TaskContext, TaskFailed, TaskPruned
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.feature_extraction import FeatureExtraction
from stdlib_tasks.model_training import ModelTraining
from stdlib_tasks.values import TrainedModel

TRAIN = ModelTraining()


def prepare(source, **params):
    task = DataPreprocessing()
    return task.run(task.Params(source=source, **params), {}, TaskContext()).outputs["output"]


@pytest.fixture(scope="module")
def cancer():
    return prepare("sklearn:breast_cancer")


@pytest.fixture(scope="module")
def diabetes():
    return prepare("sklearn:diabetes")


def train(data, ctx=None, **params):
    return TRAIN.run(TRAIN.Params(**params), {"data": data}, ctx or TaskContext(task_id="train"))


def test_random_forest_on_breast_cancer(cancer):
    out = train(cancer, algorithm="random_forest", hyperparameters={"n_estimators": 30})
    model = out.outputs["model"]
    assert isinstance(model, TrainedModel) and model.name == "train"
    assert out.metrics["accuracy"] > 0.9
    assert out.metrics["roc_auc"] > 0.95
    assert 0 < out.metrics["log_loss"] < 0.5
    assert out.metrics["train_accuracy"] >= out.metrics["accuracy"] - 0.05
    assert out.metrics["fit_seconds"] > 0
    assert out.outputs["metrics"] == out.metrics
    assert all(isinstance(v, float) for v in out.metrics.values())


@pytest.mark.parametrize("algorithm", ["logistic_regression", "svm", "knn", "decision_tree", "naive_bayes", "sgd"])
def test_classifiers_learn(cancer, algorithm):
    out = train(cancer, algorithm=algorithm)
    assert out.metrics["accuracy"] > 0.85
    assert {"f1", "precision", "recall"} <= set(out.metrics)


@pytest.mark.parametrize("algorithm", ["linear_regression", "ridge", "lasso", "random_forest"])
def test_regressors_learn(diabetes, algorithm):
    hyper = {"n_estimators": 30} if algorithm == "random_forest" else {}
    out = train(diabetes, algorithm=algorithm, hyperparameters=hyper)
    assert out.metrics["r2"] > 0.3
    assert 30 < out.metrics["rmse"] < 80 and out.metrics["mae"] < out.metrics["rmse"]
    assert "accuracy" not in out.metrics


def test_multiclass_with_string_labels(tmp_path):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["species"] = np.array(["setosa", "versicolor", "virginica"])[frame.pop("target")]
    frame.to_csv(tmp_path / "iris.csv", index=False)
    data = prepare(str(tmp_path / "iris.csv"), target="species")
    out = train(data, algorithm="logistic_regression")
    assert out.metrics["accuracy"] > 0.85 and out.metrics["roc_auc"] > 0.9
    raw = frame.drop(columns=["species"]).head(5)
    assert set(out.outputs["model"].predict(raw)) <= {"setosa", "versicolor", "virginica"}


def test_model_predicts_raw_rows_through_the_whole_transform(cancer):
    fe = FeatureExtraction()
    reduced = fe.run(fe.Params(method="select_k_best", k=8), {"data": cancer}, TaskContext()).outputs["output"]
    model = train(reduced, algorithm="logistic_regression").outputs["model"]
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    # the same rows, once through transform + estimator, once already transformed
    assert (model.predict(raw) == model.predict_features(reduced.transform_rows(raw))).all()


def test_seed_makes_training_reproducible(cancer):
    a = train(cancer, algorithm="random_forest", hyperparameters={"n_estimators": 10}, seed=3)
    b = train(cancer, algorithm="random_forest", hyperparameters={"n_estimators": 10}, seed=3)
    assert a.metrics["log_loss"] == b.metrics["log_loss"]


def test_wrong_problem_type_is_a_clear_failure(diabetes):
    with pytest.raises(TaskFailed, match="'logistic_regression' cannot be used for regression") as info:
        train(diabetes, algorithm="logistic_regression")
    assert "ridge" in info.value.hint


def test_requested_problem_must_match_the_dataset(cancer):
    with pytest.raises(TaskFailed, match="classification dataset"):
        train(cancer, algorithm="random_forest", problem="regression")


def test_unknown_hyperparameter_at_runtime_names_it(cancer):
    # bypass the compile-time check, as a hand-written IR would
    params = ModelTraining.Params.model_construct(algorithm="random_forest", hyperparameters={"n_trees": 5},
                                                  problem="auto", seed=1)
    with pytest.raises(TaskFailed, match="unknown hyperparameter 'n_trees'"):
        TRAIN.run(params, {"data": cancer}, TaskContext())


def test_bad_hyperparameter_value(cancer):
    with pytest.raises(TaskFailed, match="invalid hyperparameters for random_forest"):
        train(cancer, algorithm="random_forest", hyperparameters={"n_estimators": -3})


def test_missing_data_input():
    with pytest.raises(TaskFailed, match="data must be a dataset"):
        TRAIN.run(TRAIN.Params(), {"data": None}, TaskContext())


def test_gradient_boosting_reports_every_stage_chunk(cancer):
    seen = []
    ctx = TaskContext(task_id="gb", report=lambda step, value: seen.append((step, value)) and False)
    out = train(cancer, ctx, algorithm="gradient_boosting", hyperparameters={"n_estimators": 40})
    assert [s for s, _ in seen] == list(range(4, 41, 4))
    assert all(0.5 < v <= 1 for _, v in seen)
    assert seen[-1][1] == pytest.approx(out.metrics["accuracy"])
    assert out.outputs["model"].estimator.n_estimators_ == 40


def test_gradient_boosting_stops_when_asked(cancer):
    steps = []

    def prune_after_two(step, value):
        steps.append(step)
        return len(steps) == 2

    with pytest.raises(TaskPruned) as info:
        train(cancer, TaskContext(report=prune_after_two), algorithm="gradient_boosting",
              hyperparameters={"n_estimators": 50})
    assert info.value.step == 10 and steps == [5, 10]


def test_cross_validated_metrics_on_the_training_split(cancer):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    out = train(cancer, algorithm="logistic_regression", cv=4, seed=5)
    folds = StratifiedKFold(4, shuffle=True, random_state=5)
    expected = cross_val_score(LogisticRegression(random_state=5), cancer.X_train, cancer.y_train, cv=folds).mean()
    assert out.metrics["cv_accuracy"] == pytest.approx(expected)
    assert {"cv_f1", "cv_roc_auc", "cv_log_loss"} <= set(out.metrics)
    assert "cv_accuracy" not in train(cancer, algorithm="logistic_regression").metrics
