"""``model_evaluation``: score one or several models on a dataset's test split, with a
confusion matrix for classifiers, and name the best one: the winner (the task that trained it,
the rank metric and its value) is the task's outcome, shown with the run, and the output
``best_model`` is that model, for a gate or a deployment downstream."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from mlflowdsl.tasks.models import resolve_model
from stdlib_tasks._common import check_model_fits_data, require_dataset
from stdlib_tasks.metrics import PRIMARY_METRIC, check_metric_name, compute_metrics, confusion, direction_of


class ModelEvaluationParams(TaskParams):
    metrics: list[str] = Field(default_factory=list, description="Metrics to report (default: all for the problem).")
    rank_by: str | None = Field(
        default=None, description="Metric that picks the best model (default accuracy / r2; losses: lowest wins)."
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            check_metric_name(name)
        return value

    @field_validator("rank_by")
    @classmethod
    def _known_rank_metric(cls, value: str | None) -> str | None:
        if value is not None:
            check_metric_name(value)
        return value


class ModelEvaluation(TaskType):
    name = "model_evaluation"
    Params = ModelEvaluationParams
    inputs = {
        "model": InputSpec("model", required=False, accepts_uri=True, doc="one model"),
        "models": InputSpec("model", required=False, many=True, accepts_uri=True, doc="several models: train[*].model"),
        "data": InputSpec("dataset", doc="the dataset whose test split is scored"),
    }
    outputs = {"report": "report", "metrics": "metrics", "best_model": "model"}
    default_output = "report"
    named_only_outputs = ("best_model",)  # `deploy after evaluate, validate` keeps filling from validate
    aliases = {"evaluation_metrics": "metrics", "metric": "rank_by"}
    version = "2"
    sink = True
    input_groups = (("model", "models"),)
    doc = "Metrics, confusion matrix and a comparison of one or several models on the test split."

    def run(self, params: ModelEvaluationParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        data = require_dataset(inputs.get("data"))
        given = ([inputs["model"]] if inputs.get("model") is not None else []) + list(inputs.get("models") or [])
        if not given:
            raise TaskFailed("no model to evaluate", hint="set model = train.model or models = train[*].model")
        models = [resolve_model(m, ctx, attribute="models") for m in given]
        problems = {m.problem for m in models}
        if problems != {data.problem}:
            raise TaskFailed(
                f"the models are for {', '.join(sorted(problems))} but the dataset is {data.problem}",
                hint="evaluate models on the dataset they were trained for",
            )
        for model in models:
            check_model_fits_data(model, data)
        rank_by = params.rank_by or PRIMARY_METRIC[data.problem]
        wanted = tuple(dict.fromkeys([*params.metrics, rank_by])) if params.metrics else None
        entries: dict[str, dict[str, Any]] = {}
        for model in models:
            label = _unique(model.name or model.algorithm, entries)
            metrics = compute_metrics(model, data.X_test, data.y_test, problem=data.problem, only=wanted)
            entry: dict[str, Any] = {"algorithm": model.algorithm, "metrics": metrics}
            if data.problem == "classification":
                entry["confusion_matrix"] = confusion(model, data.X_test, data.y_test)
            entries[label] = entry
        ranked = [name for name in entries if rank_by in entries[name]["metrics"]]
        if not ranked:
            raise TaskFailed(f"metric {rank_by!r} could not be computed for any model", hint="choose another rank_by")
        sign = -1.0 if direction_of(rank_by) == "minimize" else 1.0
        # ties go to the first model given, so the choice is deterministic
        best = max(ranked, key=lambda n: (sign * entries[n]["metrics"][rank_by], -list(entries).index(n)))
        report = {
            "models": entries,
            "ranking": sorted(ranked, key=lambda n: (-sign * entries[n]["metrics"][rank_by], list(entries).index(n))),
            "rank_by": rank_by,
            "best": best,
            "test_rows": data.n_test,
        }
        best_metrics = dict(entries[best]["metrics"])
        winner = models[list(entries).index(best)]
        outcome = ({"best": best, "rank_by": rank_by, "value": best_metrics[rank_by], "compared": len(entries)}
                   if len(entries) > 1 else {})  # one model: nothing was compared
        return TaskOutputs(outputs={"report": report, "metrics": best_metrics, "best_model": winner},
                           metrics=best_metrics, outcome=outcome)


def _unique(label: str, taken: dict[str, Any]) -> str:
    candidate, n = label, 2
    while candidate in taken:
        candidate, n = f"{label}#{n}", n + 1
    return candidate
