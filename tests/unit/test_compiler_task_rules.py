"""Rules that come from a task type's declarations: side effects are not cached by default,
and input groups (model_evaluation's `model` / `models`) must be given or fillable."""

from __future__ import annotations

from mlflowdsl.compiler.api import compile_text

PIPELINE = """
workflow w {{
  defaults {{ cache {{ strategy = hybrid }} }}
  task prep: data_preprocessing {{ source = "sklearn:iris" }}
  task train: model_training after prep {{ algorithm = "knn" }}
  task deploy: model_deployment after train {{ name = "m" {deploy_extra} }}
  task ev: model_evaluation {{ data = prep.output {ev_extra} }}
}}
"""


def compile_pipeline(deploy_extra: str = "", ev_extra: str = "model = train.model"):
    return compile_text(PIPELINE.format(deploy_extra=deploy_extra, ev_extra=ev_extra), "w.mlw")


def test_side_effect_tasks_are_not_cached_unless_they_ask():
    plan = compile_pipeline().plan
    assert plan.task("deploy").cache.strategy == "none"  # `defaults` do not make it cached
    assert plan.task("train").cache.strategy == "hybrid"
    asked = compile_pipeline(deploy_extra="cache { strategy = disk }").plan
    assert asked.task("deploy").cache.strategy == "disk"


def test_evaluation_without_model_or_models_is_an_error_when_nothing_can_fill_it():
    result = compile_pipeline(ev_extra="")
    assert [(d.code, d.span.line) for d in result.diagnostics if d.severity == "error"] == [("MLW217", 7)]


def test_evaluation_model_is_filled_from_its_only_model_dependency():
    result = compile_text(PIPELINE.format(deploy_extra="", ev_extra="").replace(
        "task ev: model_evaluation {", "task ev: model_evaluation after train {"), "w.mlw")
    assert result.ok, result.diagnostics
    assert result.plan.task("ev").params["model"] == {"$ref": "train.model"}


def test_evaluation_with_models_needs_no_model():
    result = compile_pipeline(ev_extra="models = [train.model]")
    assert result.ok, result.diagnostics
    assert "model" not in result.plan.task("ev").params


REGISTRY_STATE = """
workflow w {{
  task prep: data_preprocessing {{ source = "sklearn:iris" }}
  task ev: model_evaluation {{ data = prep.output  model = "{uri}" }}
  task train: model_training {{ data = prep.output  algorithm = "knn" }}
  task check: model_validation {{ model = train.model  data = prep.output  {gate} }}
}}
"""


def test_results_that_depend_on_the_registry_are_not_cached_by_default():
    def strategies(uri: str, gate: str) -> tuple[str, str]:
        plan = compile_text(REGISTRY_STATE.format(uri=uri, gate=gate), "w.mlw").plan
        return plan.task("ev").cache.strategy, plan.task("check").cache.strategy

    assert strategies("models:/m/3", "thresholds = { accuracy = 0.5 }") == ("disk", "disk")
    assert strategies("models:/m@champion", 'better_than = "champion"  model_name = "m"') == ("none", "none")
    assert strategies("models:/m", "thresholds = { accuracy = 0.5 }") == ("none", "disk")
