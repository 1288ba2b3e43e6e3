import sys
import textwrap

import pytest
from pydantic import ValidationError

from mlflowdsl.errors import MlwError
from mlflowdsl.tasks import TaskContext, TaskFailed, TaskOutputs
from mlflowdsl.tasks.custom import Custom, schema_for
from stdlib_tasks.data_preprocessing import DataPreprocessing
from stdlib_tasks.model_training import ModelTraining

SOURCE = '''
from typing import Literal, Optional
from mlflowdsl.tasks import TaskContext, TaskOutputs
from stdlib_tasks.values import Dataset, TrainedModel


def count_rows(data: Dataset, factor: float = 1.0, label="rows") -> dict:
    return {"label": label, "metrics": {"rows": data.n_train * factor, "not_a_number": "x"}}


def best_of(models: list[TrainedModel], data: Dataset, by: Literal["accuracy", "f1"] = "accuracy") -> TrainedModel:
    return max(models, key=lambda m: m.metrics[by])


def needs(threshold: int, model: Optional[TrainedModel] = None, ctx: TaskContext = None) -> TaskOutputs:
    return TaskOutputs(outputs={"output": (threshold, model is None, ctx.task_id)}, metrics={"t": float(threshold)})


def variadic(*args):
    return args
'''


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    (root / "mlw_custom_test_fns.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(root))
    yield "mlw_custom_test_fns"
    sys.path.remove(str(root))
    sys.modules.pop("mlw_custom_test_fns", None)


@pytest.fixture(scope="module")
def iris():
    prep = DataPreprocessing()
    return prep.run(prep.Params(source="sklearn:iris"), {}, TaskContext()).outputs["output"]


def test_schema_from_type_hints(module):
    schema = schema_for(f"{module}:count_rows")
    assert set(schema.inputs) == {"data"}
    assert schema.inputs["data"].kind == "dataset" and schema.inputs["data"].required
    fields = schema.params_model.model_fields
    assert set(fields) == {"factor", "label"}
    assert fields["factor"].default == 1.0 and fields["label"].default == "rows"
    assert schema.params_model(factor="2").factor == 2.0
    with pytest.raises(ValidationError):
        schema.params_model(factor="many")
    with pytest.raises(ValidationError):
        schema.params_model(unknown=1)  # extra attributes are forbidden
    assert schema.outputs == {"output": "any", "metrics": "metrics"}


def test_list_of_models_is_a_many_input_and_return_kind_is_model(module):
    schema = schema_for(f"{module}:best_of")
    assert schema.inputs["models"].many and schema.inputs["models"].kind == "model"
    assert schema.outputs["output"] == "model"
    with pytest.raises(ValidationError):
        schema.params_model(by="recall")


def test_optional_inputs_required_params_and_context(module):
    schema = schema_for(f"{module}:needs")
    assert not schema.inputs["model"].required and schema.inputs["model"].accepts_uri
    assert schema.context_parameter == "ctx"
    assert schema.params_model.model_fields["threshold"].is_required()


def test_run_function_returns_metrics_from_a_dict(module, iris):
    out = Custom().run_function(f"{module}:count_rows", {"factor": 2}, {"data": iris}, TaskContext())
    assert out.metrics == {"rows": iris.n_train * 2.0}
    assert out.outputs["output"]["label"] == "rows"
    assert out.outputs["metrics"] == out.metrics


def test_run_function_with_a_list_of_models(module, iris):
    train = ModelTraining()
    models = [
        train.run(train.Params(algorithm=a), {"data": iris}, TaskContext(task_id=a)).outputs["model"]
        for a in ("logistic_regression", "naive_bayes")
    ]
    out = Custom().run_function(f"{module}:best_of", {}, {"models": models, "data": iris}, TaskContext())
    assert out.outputs["output"] is max(models, key=lambda m: m.metrics["accuracy"])


def test_task_outputs_are_used_as_is_and_context_is_passed(module):
    out = Custom().run_function(f"{module}:needs", {"threshold": 3}, {}, TaskContext(task_id="c1"))
    assert isinstance(out, TaskOutputs)
    assert out.outputs["output"] == (3, True, "c1") and out.metrics == {"t": 3.0}


def test_bad_params_are_a_task_failure(module):
    with pytest.raises(TaskFailed, match="bad parameters for .*threshold"):
        Custom().run_function(f"{module}:needs", {"threshold": "x"}, {}, TaskContext())


def test_missing_required_input(module):
    with pytest.raises(TaskFailed, match="needs input 'data'"):
        Custom().run_function(f"{module}:count_rows", {}, {}, TaskContext())


def test_run_uses_the_context_extra(module, iris):
    out = Custom().run(Custom.Params(), {"data": iris}, TaskContext(extra={"uses": f"{module}:count_rows"}))
    assert out.metrics["rows"] == iris.n_train


def test_unimportable_and_unusable_functions(module):
    with pytest.raises(MlwError, match="cannot import"):
        schema_for("no_such_module_xyz:fn")
    with pytest.raises(MlwError, match="cannot import"):
        schema_for(f"{module}:missing")
    with pytest.raises(MlwError, match="not of the form"):
        schema_for("just_a_name")
    with pytest.raises(MlwError, match="named parameters"):
        schema_for(f"{module}:variadic")
