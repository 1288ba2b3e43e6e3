import pytest

from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_evaluation import ModelEvaluation
from stdlib_tasks.model_training import ModelTraining

TASK = ModelEvaluation()


def prepare(source):
    prep = DataPreprocessing()
    return prep.run(prep.Params(source=source), {}, TaskContext()).outputs["output"]


def fit(data, algorithm, task_id, **hyper):
    train = ModelTraining()
    ctx = TaskContext(task_id=task_id)
    return train.run(train.Params(algorithm=algorithm, hyperparameters=hyper), {"data": data}, ctx).outputs["model"]


@pytest.fixture(scope="module")
def wine():
    data = prepare("sklearn:wine")
    models = [
        fit(data, "logistic_regression", "train[logistic_regression]"),
        fit(data, "decision_tree", "train[decision_tree]", max_depth=1),
        fit(data, "random_forest", "train[random_forest]", n_estimators=20),
    ]
    return data, models


def evaluate(inputs, **params):
    return TASK.run(TASK.Params(**params), inputs, TaskContext())


def test_compares_several_models_and_names_the_best(wine):
    data, models = wine
    out = evaluate({"models": models, "data": data})
    report = out.outputs["report"]
    assert list(report["models"]) == ["train[logistic_regression]", "train[decision_tree]", "train[random_forest]"]
    accuracies = {n: e["metrics"]["accuracy"] for n, e in report["models"].items()}
    assert report["best"] == max(accuracies, key=accuracies.get)
    assert report["ranking"][0] == report["best"] and report["ranking"][-1] == "train[decision_tree]"
    assert accuracies["train[decision_tree]"] < 0.8 < accuracies[report["best"]]
    assert out.metrics == report["models"][report["best"]]["metrics"]


def test_confusion_matrix(wine):
    data, models = wine
    entry = evaluate({"model": models[0], "data": data}).outputs["report"]["models"]["train[logistic_regression]"]
    matrix = entry["confusion_matrix"]
    assert matrix["labels"] == [0, 1, 2]
    assert sum(map(sum, matrix["matrix"])) == data.n_test
    correct = sum(matrix["matrix"][i][i] for i in range(3))
    assert correct / data.n_test == pytest.approx(entry["metrics"]["accuracy"])


def test_selected_metrics_and_loss_ranking(wine):
    data, models = wine
    out = evaluate({"models": models, "data": data}, metrics=["accuracy"], rank_by="log_loss")
    report = out.outputs["report"]
    losses = {n: e["metrics"]["log_loss"] for n, e in report["models"].items()}
    assert report["best"] == min(losses, key=losses.get)
    assert set(report["models"][report["best"]]["metrics"]) == {"accuracy", "log_loss"}


def test_single_model_and_list_together_with_duplicate_names(wine):
    data, models = wine
    report = evaluate({"model": models[0], "models": [models[0]], "data": data}).outputs["report"]
    assert list(report["models"]) == ["train[logistic_regression]", "train[logistic_regression]#2"]


def test_regression_has_no_confusion_matrix():
    data = prepare("sklearn:diabetes")
    report = evaluate({"model": fit(data, "ridge", "ridge"), "data": data}).outputs["report"]
    assert report["rank_by"] == "r2" and "confusion_matrix" not in report["models"]["ridge"]


def test_no_model_given(wine):
    data, _ = wine
    with pytest.raises(TaskFailed, match="no model to evaluate"):
        evaluate({"data": data})


def test_models_must_match_the_dataset_problem(wine):
    _, models = wine
    with pytest.raises(TaskFailed, match="dataset is regression"):
        evaluate({"models": models, "data": prepare("sklearn:diabetes")})


def test_model_trained_on_other_features_is_refused(wine):
    from stdlib_tasks.feature_extraction import FeatureExtraction

    data, models = wine
    fe = FeatureExtraction()
    reduced = fe.run(fe.Params(k=4), {"data": data}, TaskContext()).outputs["output"]
    with pytest.raises(TaskFailed, match="trained on 13 features but the dataset has 4") as info:
        evaluate({"model": models[0], "data": reduced})
    assert "feature_extraction" in info.value.hint
