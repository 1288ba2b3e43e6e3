"""``model_validation``: a metric gate. The model passes through unchanged when every threshold
is met and, with ``better_than = "champion"``, when it is at least as good as the current holder
of that alias of the registered model ``model_name`` (scored on the same data, like MLflow's
``MetricThreshold`` baseline comparison: ``min_delta`` absolute, ``min_relative`` relative
improvement, direction-aware for losses). Otherwise the task fails (not retried) saying which
metric missed and by how much, so its dependents (deployment, promotion) are skipped. Nobody
holding the alias yet passes the comparison, and the report says so."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from mlflowdsl.tasks.models import resolve_model
from mlflowdsl.tasks.services import RegistryError
from stdlib_tasks._common import check_model_fits_data, require_dataset
from stdlib_tasks.metrics import LOSS_METRICS, check_metric_name, compute_metrics
from stdlib_tasks.model_deployment import check_safe_name
from stdlib_tasks.training import cross_validated_metrics, make_folds


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
    better_than: str | None = Field(
        default=None, description="Alias (e.g. `champion`) of `model_name` whose holder the model must beat.")
    model_name: str | None = Field(
        default=None, description="Registered model of `better_than` (default: the name in a `models:/` input).")
    min_delta: float = Field(default=0.0, ge=0, description="Required absolute improvement over the alias holder.")
    min_relative: float = Field(default=0.0, ge=0, description="Required relative improvement over the alias holder.")
    compare: list[str] = Field(
        default_factory=list,
        description="Metrics compared with the alias holder (default: the thresholds', else accuracy or r2).")

    @field_validator("thresholds")
    @classmethod
    def _known_threshold_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            check_metric_name(name)
        return value

    @field_validator("compare")
    @classmethod
    def _known_compare_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            check_metric_name(name)
        return value

    @field_validator("better_than", "model_name")
    @classmethod
    def _safe_names(cls, value: str | None) -> str | None:
        return None if value is None else check_safe_name(value, "name")

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

    @classmethod
    def has_side_effects(cls, params: dict[str, Any]) -> bool:
        # Comparing with an alias holder depends on the registry, not only on the cache key.
        return bool(params.get("better_than"))

    def run(self, params: ModelValidationParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        model = resolve_model(inputs.get("model"), ctx)
        data = require_dataset(inputs.get("data"))
        check_model_fits_data(model, data)
        compared = compared_metrics(params, model)
        wanted = tuple(dict.fromkeys([*params.scoring, *params.thresholds, *compared])) or None
        metrics, mode = score(model, data, params, wanted)
        checks = [check(name, bound, metrics) for name, bound in sorted(params.thresholds.items())]
        if params.better_than:
            checks += compare_with_alias_holder(params, model, data, metrics, compared, inputs.get("model"), ctx)
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


def score(model: Any, data: Any, params: ModelValidationParams, wanted: tuple[str, ...] | None) -> tuple[dict, str]:
    """(metrics, mode) of ``model`` on ``data``: the test split, or k-fold cross-validation."""
    if params.cv:
        return cross_validate(model, data, params.cv, params.seed, wanted), f"{params.cv}-fold cross-validation"
    return compute_metrics(model, data.X_test, data.y_test, problem=model.problem, only=wanted), "test split"


def compared_metrics(params: ModelValidationParams, model: Any) -> tuple[str, ...]:
    if not params.better_than:
        return ()
    if params.compare:
        return tuple(params.compare)
    if params.thresholds:
        return tuple(sorted(params.thresholds))
    return ("accuracy",) if model.problem == "classification" else ("r2",)


def compare_with_alias_holder(params: ModelValidationParams, model: Any, data: Any, metrics: dict[str, float],
                              compared: tuple[str, ...], model_input: Any, ctx: TaskContext) -> list[dict[str, Any]]:
    """The comparisons with the holder of ``better_than``: the holder is scored on the same data
    the same way (a fair baseline); a holder trained on other features falls back to its
    recorded metrics, and the check says which baseline it used."""
    name = params.model_name
    if name is None and isinstance(model_input, str) and model_input.startswith("models:/"):
        name = ctx.services.model_name(model_input)
    if name is None:
        raise TaskFailed(f"better_than = {params.better_than!r} needs to know which registered model to look at",
                         retryable=False, hint='set model_name = "NAME" (the name the model is deployed under)')
    registry = ctx.services.open_registry()
    try:
        holder_version = registry.aliases(name).get(params.better_than)
        if holder_version is None:
            return [{**ctx.services.compare(m, metrics[m], None, against=f"{name}@{params.better_than}"),
                     "kind": "better_than"} for m in compared if m in metrics] or [
                {"metric": None, "passed": True, "kind": "better_than",
                 "message": f"no {name}@{params.better_than} yet: nothing to compare with, passes"}]
        holder_mv = registry.resolve(f"{name}/{holder_version}")
        try:
            holder = registry.load(holder_mv)
        except RegistryError as exc:
            raise TaskFailed(f"cannot load the {params.better_than} holder {holder_mv.id}: {exc.args[0]}",
                             retryable=False, hint=exc.hint) from None
    finally:
        registry.close()
    against = f"{name}@{params.better_than} ({holder_mv.id})"
    same_features = not holder.feature_names or tuple(holder.feature_names) == tuple(data.feature_names)
    if same_features:
        baseline, source = score(holder, data, params, compared)[0], "scored on the same data"
    else:
        baseline, source = dict(holder_mv.metrics), "recorded at registration (trained on other features)"
    out = []
    for metric in compared:
        if metric not in metrics:
            continue
        if metric not in baseline:
            raise TaskFailed(f"the {params.better_than} holder {holder_mv.id} has no metric {metric!r}",
                             retryable=False, hint="compare on a metric both models have")
        result = ctx.services.compare(metric, metrics[metric], baseline[metric], min_delta=params.min_delta,
                                      min_relative=params.min_relative, against=against)
        out.append({**result, "kind": "better_than", "baseline_source": source})
    return out


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
    import numpy as np  # noqa: PLC0415 - heavy: numpy only when the task runs

    X = np.vstack([data.X_train, data.X_test])
    y = np.concatenate([data.y_train, data.y_test])
    splits = make_folds(X, y, model.problem, folds, seed)
    return cross_validated_metrics(model.estimator, model.algorithm, model.problem, X, y, splits, only=wanted)
