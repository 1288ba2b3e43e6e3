"""``model_validation``: a metric gate. The model passes through unchanged when every threshold
is met; otherwise the task fails (not retried) saying which metric missed and by how much, so
its dependents (deployment...) are skipped."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from stdlib_tasks.metrics import LOSS_METRICS, check_metric_name


class ModelValidationParams(TaskParams):
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> bound. For accuracy, f1, precision, recall, roc_auc, r2 the bound is a "
        "minimum; for the losses log_loss, rmse, mae it is a maximum.",
    )
    cv: int = Field(
        default=0, ge=0, le=20,
        description="0: score the model on the dataset's test split. k >= 2: k-fold cross-validation "
        "of the model's algorithm and hyperparameters (refitted per fold) on all rows.",
    )
    scoring: list[str] = Field(
        default_factory=list, description="Metrics to compute (default: all for the problem; thresholds' always)."
    )
    seed: int = Field(default=42, description="Seed of the cross-validation folds.")

    @field_validator("thresholds")
    @classmethod
    def _known_threshold_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            check_metric_name(name)
        return value

    @field_validator("scoring")
    @classmethod
    def _known_scoring_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            check_metric_name(name)
        return value

    @field_validator("cv")
    @classmethod
    def _not_one_fold(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cv = 1 is not cross-validation; use 0 (test split) or at least 2 folds")
        return value


class ModelValidation(TaskType):
    name = "model_validation"
    Params = ModelValidationParams
    inputs = {
        "model": InputSpec("model", accepts_uri=True, doc="the model to check"),
        "data": InputSpec("dataset", doc="the dataset to score it on"),
    }
    outputs = {"model": "model", "metrics": "metrics", "report": "report"}
    default_output = "model"
    aliases = {"metric_thresholds": "thresholds", "min_metrics": "thresholds", "cv_folds": "cv", "folds": "cv"}
    version = "1"
    doc = "Gate a model on metric thresholds (test split or k-fold cross-validation)."

    def run(self, params: ModelValidationParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        from stdlib_tasks._common import check_model_fits_data, require_dataset, resolve_model

        model = resolve_model(inputs.get("model"), ctx)
        data = require_dataset(inputs.get("data"))
        check_model_fits_data(model, data)
        wanted = tuple(dict.fromkeys([*params.scoring, *params.thresholds])) or None
        if params.cv:
            metrics = cross_validate(model, data, params.cv, params.seed, wanted)
            mode = f"{params.cv}-fold cross-validation"
        else:
            from stdlib_tasks.metrics import compute_metrics

            metrics = compute_metrics(model, data.X_test, data.y_test, problem=model.problem, only=wanted)
            mode = "test split"
        checks = [check(name, bound, metrics) for name, bound in sorted(params.thresholds.items())]
        report = {
            "model": model.name or model.algorithm,
            "mode": mode,
            "metrics": metrics,
            "checks": checks,
            "passed": all(c["passed"] for c in checks),
        }
        failed = [c for c in checks if not c["passed"]]
        if failed:
            error = TaskFailed(
                "validation gate failed: " + "; ".join(c["message"] for c in failed),
                retryable=False,
                hint="improve the model or change the thresholds",
            )
            error.report = report  # type: ignore[attr-defined]
            raise error
        return TaskOutputs(outputs={"model": model, "metrics": metrics, "report": report}, metrics=metrics)


def check(metric: str, bound: float, metrics: dict[str, float]) -> dict[str, Any]:
    """One threshold check as a plain dict.

    >>> check("accuracy", 0.9, {"accuracy": 0.85})["message"]
    'accuracy = 0.8500 is below the minimum 0.9 by 0.0500'
    """
    if metric not in metrics:
        raise TaskFailed(
            f"metric {metric!r} could not be computed for this model",
            hint="roc_auc/log_loss need a model with probabilities; r2/rmse/mae are for regression",
        )
    value = metrics[metric]
    is_max = metric in LOSS_METRICS
    passed = value <= bound if is_max else value >= bound
    margin = abs(value - bound)
    word = "above the maximum" if is_max else "below the minimum"
    return {
        "metric": metric,
        "value": value,
        "threshold": bound,
        "kind": "max" if is_max else "min",
        "passed": passed,
        "margin": (bound - value) if is_max else (value - bound),
        "message": f"{metric} = {value:.4f} " + ("meets the threshold" if passed else f"is {word} {bound:g} by {margin:.4f}"),
    }


def cross_validate(model: Any, data: Any, folds: int, seed: int, wanted: tuple[str, ...] | None) -> dict[str, float]:
    """Mean of each metric over k folds of all rows, refitting a clone of the model's
    estimator per fold. The features were already transformed by the preprocessing fitted on
    the training split."""
    import numpy as np

    from stdlib_tasks.training import cross_validated_metrics, make_folds

    X = np.vstack([data.X_train, data.X_test])
    y = np.concatenate([data.y_train, data.y_test])
    splits = make_folds(X, y, model.problem, folds, seed)
    return cross_validated_metrics(model.estimator, model.algorithm, model.problem, X, y, splits, only=wanted)
