"""The declarations of the standard task types (what the compiler reads)."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from mlflowdsl.tasks import TaskType, registry
from stdlib_tasks.algorithms import ALGORITHMS
from stdlib_tasks.hyperparameter_tuning import HyperparameterTuning
from stdlib_tasks.model_deployment import ModelDeployment
from stdlib_tasks.model_training import ModelTraining
from stdlib_tasks.model_validation import ModelValidation

STANDARD = [
    "data_preprocessing", "feature_extraction", "model_training", "model_validation",
    "hyperparameter_tuning", "model_deployment", "batch_inference", "model_evaluation", "custom",
]
KINDS = {"dataset", "model", "metrics", "predictions", "report", "deployment", "any"}


def test_every_standard_type_is_registered_through_entry_points():
    types = registry()
    for name in STANDARD:
        assert issubclass(types[name], TaskType)
        assert types[name].name == name


@pytest.mark.parametrize("name", STANDARD)
def test_declarations_are_consistent(name):
    cls = registry()[name]
    assert cls.default_output in cls.outputs
    assert set(cls.outputs.values()) <= KINDS
    for spec in cls.inputs.values():
        kinds = (spec.kind,) if isinstance(spec.kind, str) else spec.kind
        assert set(kinds) <= KINDS
    fields = cls.Params.model_fields
    if name != "custom":
        for alias, target in cls.aliases.items():
            assert target in fields, f"alias {alias} -> {target} is not a field"
            assert alias not in fields
        for read in cls.reads:
            assert read in fields
        for field_name, info in fields.items():
            assert info.description, f"{name}.{field_name} has no description"
        assert cls.Params.model_config.get("extra") == "forbid"
    assert cls.version and cls.doc


def test_seed_aliases():
    types = registry()
    assert types["data_preprocessing"].aliases["dataset_path"] == "source"
    assert types["data_preprocessing"].aliases["target_column"] == "target"
    assert types["model_training"].aliases["model_type"] == "algorithm"
    assert types["hyperparameter_tuning"].aliases["max_trials"] == "n_trials"


def test_sinks_and_expensive_types():
    types = registry()
    assert {n for n in STANDARD if types[n].sink} == {"model_deployment", "batch_inference", "model_evaluation"}
    assert types["model_training"].expensive and types["hyperparameter_tuning"].expensive


def test_importing_the_task_modules_does_not_load_heavy_libraries():
    code = (
        "import sys\n"
        "import stdlib_tasks.data_preprocessing, stdlib_tasks.feature_extraction, stdlib_tasks.model_training,"
        " stdlib_tasks.model_validation, stdlib_tasks.hyperparameter_tuning, stdlib_tasks.model_deployment,"
        " stdlib_tasks.batch_inference, stdlib_tasks.model_evaluation, mlflowdsl.tasks.custom\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'pandas', 'numpy', 'optuna', 'scipy', 'joblib'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_hyperparameter_is_rejected_with_a_suggestion():
    with pytest.raises(ValidationError, match="did you mean 'n_estimators'"):
        ModelTraining.Params(algorithm="random_forest", hyperparameters={"n_estimator": 10})


def test_unknown_algorithm_is_rejected():
    with pytest.raises(ValidationError) as info:
        ModelTraining.Params(algorithm="random_forst")
    assert info.value.errors()[0]["type"] == "literal_error"


def test_algorithm_that_cannot_do_the_requested_problem_is_rejected():
    with pytest.raises(ValidationError, match="does not support regression"):
        ModelTraining.Params(algorithm="logistic_regression", problem="regression")


def test_tunable_hyperparameters_exclude_runtime_settings():
    names = ModelTraining().tunable_hyperparameters({"algorithm": "random_forest"})
    assert {"n_estimators", "max_depth", "min_samples_leaf"} <= names
    assert "n_jobs" not in names and "verbose" not in names
    assert ModelTraining().tunable_hyperparameters({"algorithm": "nope"}) is None
    # the default algorithm applies when none is written
    assert ModelTraining().tunable_hyperparameters({}) == set(ALGORITHMS["random_forest"].hyperparameters)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"n_estimators": {"type": "integer", "min": 100, "max": 10}}, "greater than max"),
        ({"criterion": {"type": "categorical", "choices": []}}, "non-empty"),
        ({"n_estimator": {"type": "integer", "min": 1, "max": 5}}, "did you mean 'n_estimators'"),
        ({"max_depth": {"type": "float", "min": 0, "max": 5, "log": True}}, "min > 0"),
        ({}, "empty"),
    ],
)
def test_bad_search_spaces_are_rejected(space, message):
    with pytest.raises(ValidationError, match=message):
        HyperparameterTuning.Params(algorithm="random_forest", search_space=space)


def test_seed_search_space_form_is_accepted():
    p = HyperparameterTuning.Params(
        search_space={"n_estimators": {"type": "integer", "min": 10, "max": 100},
                      "max_depth": {"type": "integer", "min": 3, "max": 20}},
        n_trials=50, objective_metric="accuracy",
    )
    assert p.search_space["n_estimators"].kind == "int"


def test_threshold_metric_names_are_checked():
    with pytest.raises(ValidationError, match="did you mean 'accuracy'"):
        ModelValidation.Params(thresholds={"acuracy": 0.9})


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x..y", ""])
def test_deployment_names_must_be_safe(name):
    with pytest.raises(ValidationError):
        ModelDeployment.Params(name=name)


def test_deployment_replica_bounds():
    with pytest.raises(ValidationError, match="greater than max_replicas"):
        ModelDeployment.Params(name="m", min_replicas=3, max_replicas=2)


def test_no_parameter_shadows_a_task_directive():
    directives = {"timeout", "domain", "cache", "resources", "retry", "when", "uses", "after"}
    for name in STANDARD:
        cls = registry()[name]
        clashes = directives & (set(cls.Params.model_fields) | set(cls.inputs) | set(cls.aliases))
        assert not clashes, f"{name}: {clashes}"
