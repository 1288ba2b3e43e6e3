"""``model_training``: fit one algorithm from the registry and score it on the test split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlflowdsl.tasks import InputSpec, TaskContext, TaskOutputs, TaskParams, TaskType
from mlflowdsl.tasks.values import TrainedModel
from stdlib_tasks._common import require_dataset
from stdlib_tasks.algorithms import ALGORITHM_NAMES, ALGORITHMS, check_hyperparameter_names, check_problem
from stdlib_tasks.metrics import PRIMARY_METRIC, compute_metrics
from stdlib_tasks.training import (
    build_estimator, cross_validated_metrics, fit_estimator, make_folds, resolve_problem,
)

AlgorithmName = Literal[ALGORITHM_NAMES]  # type: ignore[valid-type]


class ModelTrainingParams(TaskParams):
    algorithm: AlgorithmName = Field(  # type: ignore[valid-type]
        default="random_forest",
        description="The algorithm: " + "; ".join(f"{a.name} ({a.doc})" for a in ALGORITHMS.values()),
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the scikit-learn estimator (e.g. n_estimators, max_depth).",
    )
    problem: Literal["auto", "classification", "regression"] = Field(
        default="auto", description="auto: the dataset's problem type."
    )
    seed: int = Field(default=42, description="random_state of the estimator (unless set in hyperparameters).")
    cv: int = Field(
        default=0, ge=0, le=20,
        description="k >= 2: also report cv_<metric>, the mean over k folds of the training split "
        "(an objective for tuning that never looks at the test split). 0: off.",
    )

    @model_validator(mode="after")
    def _known_hyperparameters(self) -> "ModelTrainingParams":
        if self.cv == 1:
            raise ValueError("cv = 1 is not cross-validation; use 0 (off) or at least 2 folds")
        check_hyperparameter_names(self.algorithm, self.hyperparameters)
        check_problem(self.algorithm, self.problem)
        return self


class ModelTraining(TaskType):
    name = "model_training"
    Params = ModelTrainingParams
    inputs = {"data": InputSpec("dataset", doc="the preprocessed dataset")}
    outputs = {"model": "model", "metrics": "metrics"}
    default_output = "model"
    aliases = {
        "cv_folds": "cv",
        "model_type": "algorithm",
        "model": "algorithm",
        "params": "hyperparameters",
        "hyperparams": "hyperparameters",
        "problem_type": "problem",
        "random_state": "seed",
    }
    version = "1"
    expensive = True
    doc = "Train a scikit-learn model; metrics on the held-out test split (and train_<metric> on training)."

    def tunable_hyperparameters(self, params: dict[str, Any]) -> set[str] | None:
        algo = ALGORITHMS.get(str(params.get("algorithm", "random_forest")))
        return set(algo.hyperparameters) if algo else None

    def run(self, params: ModelTrainingParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        data = require_dataset(inputs.get("data"))
        model, metrics = train(
            data, params.algorithm, params.hyperparameters, params.problem, params.seed, ctx, cv=params.cv
        )
        return TaskOutputs(outputs={"model": model, "metrics": metrics}, metrics=metrics)


def train(
    data: Any,
    algorithm: str,
    hyperparameters: dict[str, Any],
    problem: str,
    seed: int,
    ctx: TaskContext | None,
    *,
    cv: int = 0,
) -> tuple[Any, dict[str, float]]:
    """Fit on the training split; metrics on the test split plus ``train_*``, ``fit_seconds``
    and, with ``cv`` folds, ``cv_*`` (cross-validated on the training split).

    Staged algorithms report the primary test metric after every chunk of stages through
    ``ctx.report`` (a tuning pruner may stop them)."""
    problem = resolve_problem(algorithm, problem, data.problem)
    estimator = build_estimator(algorithm, problem, hyperparameters, seed)

    def model_of(est: Any, metrics: dict[str, float] | None = None) -> TrainedModel:
        return TrainedModel(
            estimator=est, algorithm=algorithm, problem=problem, feature_names=data.feature_names,
            target=data.target, metrics=metrics or {}, params=dict(hyperparameters), transform=data.transform,
            raw_columns=data.raw_columns, name=ctx.task_id if ctx else algorithm,
            dataset_fingerprint=data.fingerprint,
        )

    primary = PRIMARY_METRIC[problem]

    def score(est: Any) -> float:
        return compute_metrics(model_of(est), data.X_test, data.y_test, problem=problem, only=(primary,))[primary]

    seconds = fit_estimator(
        estimator, algorithm, data.X_train, data.y_train, score=score, report=ctx.report if ctx else None
    )
    probe = model_of(estimator)
    metrics = compute_metrics(probe, data.X_test, data.y_test, problem=problem)
    train_metrics = compute_metrics(probe, data.X_train, data.y_train, problem=problem)
    metrics.update({f"train_{k}": v for k, v in train_metrics.items()})
    metrics["fit_seconds"] = seconds
    if cv:
        folds = make_folds(data.X_train, data.y_train, problem, cv, seed)
        cross = cross_validated_metrics(estimator, algorithm, problem, data.X_train, data.y_train, folds)
        metrics.update({f"cv_{k}": v for k, v in cross.items()})
    return model_of(estimator, metrics), metrics
