import joblib
import pytest

from mlflowdsl.tasks import TaskContext, TaskFailed
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining
from stdlib_tasks.model_validation import ModelValidation, check

TASK = ModelValidation()


def prepare(source):
    prep = DataPreprocessing()
    return prep.run(prep.Params(source=source), {}, TaskContext()).outputs["output"]


def fit(data, algorithm, **hyper):
    task = ModelTraining()
    out = task.run(task.Params(algorithm=algorithm, hyperparameters=hyper), {"data": data}, TaskContext(task_id="train"))
    return out.outputs["model"], out.metrics


@pytest.fixture(scope="module")
def cancer():
    data = prepare("sklearn:breast_cancer")
    model, metrics = fit(data, "logistic_regression")
    return data, model, metrics


def validate(model, data, ctx=None, **params):
    return TASK.run(TASK.Params(**params), {"model": model, "data": data}, ctx or TaskContext())


def test_gate_passes_above_the_threshold_and_passes_the_model_through(cancer):
    data, model, metrics = cancer
    out = validate(model, data, thresholds={"accuracy": metrics["accuracy"] - 0.05, "log_loss": 0.5})
    assert out.outputs["model"] is model
    assert out.outputs["report"]["passed"] is True
    assert out.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    kinds = {c["metric"]: c["kind"] for c in out.outputs["report"]["checks"]}
    assert kinds == {"accuracy": "min", "log_loss": "max"}


def test_gate_fails_below_the_threshold_saying_by_how_much(cancer):
    data, model, metrics = cancer
    bound = round(metrics["accuracy"] + 0.02, 4)
    with pytest.raises(TaskFailed) as info:
        validate(model, data, thresholds={"accuracy": bound})
    err = info.value
    assert err.retryable is False
    assert f"accuracy = {metrics['accuracy']:.4f} is below the minimum {bound:g} by {bound - metrics['accuracy']:.4f}" in str(err)
    assert err.report["passed"] is False


def test_loss_thresholds_are_maxima(cancer):
    data, model, metrics = cancer
    with pytest.raises(TaskFailed, match="log_loss = .* is above the maximum 0.01"):
        validate(model, data, thresholds={"log_loss": 0.01})


def test_every_failing_metric_is_listed(cancer):
    data, model, _ = cancer
    with pytest.raises(TaskFailed) as info:
        validate(model, data, thresholds={"accuracy": 0.9999, "f1": 0.9999, "recall": 0.1})
    message = str(info.value)
    assert "accuracy" in message and "f1" in message and "recall" not in message


def test_cross_validation_mode(cancer):
    data, model, _ = cancer
    out = validate(model, data, cv=3, thresholds={"roc_auc": 0.9})
    report = out.outputs["report"]
    assert report["mode"] == "3-fold cross-validation"
    assert 0.9 < out.metrics["roc_auc"] <= 1.0


def test_regression_gate():
    data = prepare("sklearn:diabetes")
    model, metrics = fit(data, "ridge")
    assert validate(model, data, thresholds={"r2": 0.3, "rmse": 80}).outputs["report"]["passed"]
    with pytest.raises(TaskFailed, match="rmse .* above the maximum 10"):
        validate(model, data, thresholds={"rmse": 10})


def test_metric_of_the_wrong_problem_cannot_be_computed(cancer):
    data, model, _ = cancer
    with pytest.raises(TaskFailed, match="'r2' could not be computed"):
        validate(model, data, thresholds={"r2": 0.5})


def test_model_from_a_joblib_path(cancer, tmp_path):
    data, model, _ = cancer
    joblib.dump(model, tmp_path / "m.joblib")
    out = validate("m.joblib", data, TaskContext(base_dir=str(tmp_path)), thresholds={"accuracy": 0.5})
    assert out.outputs["report"]["passed"]


def test_missing_model_file(cancer, tmp_path):
    data, _, _ = cancer
    with pytest.raises(TaskFailed, match="model not found"):
        validate("gone.joblib", data, TaskContext(base_dir=str(tmp_path)))


def test_check_message():
    assert check("mae", 5.0, {"mae": 4.0})["passed"] is True
    assert check("mae", 5.0, {"mae": 6.0})["message"] == "mae = 6.0000 is above the maximum 5 by 1.0000"


def test_model_trained_on_other_features_is_refused(cancer):
    from stdlib_tasks.feature_extraction import FeatureExtraction

    data, model, _ = cancer
    fe = FeatureExtraction()
    reduced = fe.run(fe.Params(method="pca", n_components=3), {"data": data}, TaskContext()).outputs["output"]
    with pytest.raises(TaskFailed, match="30 features but the dataset has 3"):
        validate(model, reduced, thresholds={"accuracy": 0.5})


# ---------------------------------------------------------------- better_than: the alias holder


def registry_context(tmp_path):
    from mlflowdsl.runtime.registry.services import RegistryServices
    from mlflowdsl.settings import Settings

    return TaskContext(task_id="validate", execution_id="ex", services=RegistryServices(Settings(home=str(tmp_path / "home"))),
                       artifact_dir=str(tmp_path / "home" / "artifacts" / "ex"))


def registered_champion(tmp_path, model):
    from mlflowdsl.runtime.registry import open_registry
    from mlflowdsl.settings import Settings

    registry = open_registry(Settings(home=str(tmp_path / "home")))
    registry.promote(registry.register("cancer", model), "champion")
    return registry


def test_better_than_without_a_holder_passes_and_says_so(cancer, tmp_path):
    data, model, _ = cancer
    out = validate(model, data, registry_context(tmp_path), better_than="champion", model_name="cancer")
    [check_] = out.outputs["report"]["checks"]
    assert check_["passed"] and "no cancer@champion to compare with" in check_["message"]


def test_better_than_refuses_a_worse_model_saying_by_how_much(cancer, tmp_path):
    data, champion, _ = cancer
    registered_champion(tmp_path, champion)
    weak, _ = fit(data, "decision_tree", max_depth=1)
    ctx = registry_context(tmp_path)
    with pytest.raises(TaskFailed) as info:
        validate(weak, data, ctx, better_than="champion", model_name="cancer")
    report = info.value.report
    [comparison] = [c for c in report["checks"] if c["kind"] == "better_than"]
    assert comparison["baseline_source"] == "scored on the same data"
    shortfall = comparison["baseline"] - comparison["value"]
    assert shortfall > 0
    assert f"accuracy = {comparison['value']:.4f} vs cancer@champion (cancer/1) {comparison['baseline']:.4f}" in str(info.value)
    assert f"below min_delta 0 by {shortfall:.4f}" in str(info.value)


def test_better_than_passes_an_equal_model_unless_an_improvement_is_required(cancer, tmp_path):
    data, champion, _ = cancer
    registered_champion(tmp_path, champion)
    ctx = registry_context(tmp_path)
    out = validate(champion, data, ctx, better_than="champion", model_name="cancer", compare=["accuracy", "log_loss"])
    assert [c["improvement"] for c in out.outputs["report"]["checks"]] == [0.0, 0.0]
    with pytest.raises(TaskFailed, match="relative improvement 0.00% is below min_relative 1.00%"):
        validate(champion, data, ctx, better_than="champion", model_name="cancer", min_relative=0.01)


def test_better_than_reads_the_name_from_a_models_uri(cancer, tmp_path):
    data, champion, _ = cancer
    registered_champion(tmp_path, champion)
    out = validate("models:/cancer/1", data, registry_context(tmp_path), better_than="champion")
    assert out.outputs["report"]["passed"] and "cancer@champion (cancer/1)" in out.outputs["report"]["checks"][0]["message"]


def test_better_than_needs_a_model_name(cancer, tmp_path):
    data, model, _ = cancer
    with pytest.raises(TaskFailed, match="needs to know which registered model") as info:
        validate(model, data, registry_context(tmp_path), better_than="champion")
    assert 'model_name = "NAME"' in info.value.hint
