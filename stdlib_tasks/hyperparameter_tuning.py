"""``hyperparameter_tuning``: a real Optuna study over one algorithm's hyperparameters.

Each trial is scored by k-fold cross-validation on the training split (or, with ``cv = 0``, on
a validation slice held out of the training split) — never on the training score and never on
the test split, which is kept for the final model's metrics. The best parameters are refitted
on the whole training split and that model is the task's output.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlflowdsl.tasks import InputSpec, TaskContext, TaskOutputs, TaskParams, TaskType
from stdlib_tasks._common import require_dataset
from stdlib_tasks.algorithms import ALGORITHMS, check_hyperparameter_names, check_problem, did_you_mean
from stdlib_tasks.metrics import PRIMARY_METRIC, check_metric_name, direction_of
from stdlib_tasks.model_training import AlgorithmName, train
from stdlib_tasks.training import resolve_problem
from stdlib_tasks.tuning_study import run_study


class SearchSpec(TaskParams):
    """One dimension, in the JSON form of search spaces: ``{"type": "integer", "min": 10, "max": 100}``,
    ``{"type": "float", "min": 1e-4, "max": 0.1, "log": true}``, ``{"type": "categorical",
    "choices": ["gini", "entropy"]}`` (``int`` and ``choice`` are accepted spellings)."""

    type: Literal["integer", "int", "float", "categorical", "choice"] = Field(description="The kind of values.")
    min: float | None = Field(default=None, description="Lowest value (integer/float).")
    max: float | None = Field(default=None, description="Highest value (integer/float), inclusive.")
    log: bool = Field(default=False, description="Sample on a log scale (min must be > 0).")
    step: float | None = Field(default=None, gt=0, description="Grid step (integer/float).")
    choices: list[Any] | None = Field(default=None, description="The values (categorical).")

    @property
    def kind(self) -> str:
        return {"integer": "int", "categorical": "choice"}.get(self.type, self.type)

    @model_validator(mode="after")
    def _consistent(self) -> "SearchSpec":
        if self.kind == "choice":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty 'choices' list")
            return self
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type} dimension needs 'min' and 'max'")
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        if self.log and self.min <= 0:
            raise ValueError("a log-scale dimension needs min > 0")
        if self.kind == "int" and (self.min != int(self.min) or self.max != int(self.max)):
            raise ValueError("an integer dimension needs whole-number min and max")
        return self


class HyperparameterTuningParams(TaskParams):
    algorithm: AlgorithmName = Field(default="random_forest", description="The algorithm to tune (as in model_training).")  # type: ignore[valid-type]
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="Fixed hyperparameters of every trial.")
    search_space: dict[str, SearchSpec] = Field(description="hyperparameter -> dimension (see SearchSpec).")
    n_trials: int = Field(default=20, ge=1, le=10_000, description="Number of trials.")
    objective_metric: str | None = Field(default=None, description="Metric to optimize (default: accuracy / r2).")
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None, description="Default: minimize for losses (log_loss, rmse, mae), maximize otherwise."
    )
    sampler: Literal["tpe", "random"] = Field(default="tpe", description="tpe (Bayesian) or random search.")
    pruner: Literal["none", "median"] = Field(
        default="none",
        description="median: stop staged trials (gradient_boosting) doing worse than the median (cv = 0 only).",
    )
    cv: int = Field(default=3, ge=0, le=20,
                    description="Folds of cross-validation on the training split; 0: a 25% validation slice.")
    seed: int = Field(default=42, description="Seed of the sampler, folds and estimators.")
    # not `timeout`: that is the task directive (the whole task's per-attempt limit)
    study_timeout: float | None = Field(
        default=None, gt=0, description="Stop starting new trials after this many seconds (the best so far wins)."
    )
    problem: Literal["auto", "classification", "regression"] = Field(default="auto", description="auto: the dataset's.")

    @model_validator(mode="after")
    def _consistent(self) -> "HyperparameterTuningParams":
        if not self.search_space:
            raise ValueError("search_space is empty; name at least one hyperparameter to search")
        if self.cv == 1:
            raise ValueError("cv = 1 is not cross-validation; use 0 (validation slice) or at least 2 folds")
        algo = ALGORITHMS[self.algorithm]
        for name in sorted(self.search_space):
            if name not in algo.hyperparameters:
                raise ValueError(
                    f"{name!r} is not a tunable hyperparameter of {self.algorithm}{did_you_mean(name, algo.hyperparameters)}"
                )
        check_hyperparameter_names(self.algorithm, self.hyperparameters)
        check_problem(self.algorithm, self.problem)
        if self.objective_metric is not None:
            check_metric_name(self.objective_metric)
        return self


class HyperparameterTuning(TaskType):
    name = "hyperparameter_tuning"
    Params = HyperparameterTuningParams
    inputs = {"data": InputSpec("dataset", doc="the preprocessed dataset")}
    outputs = {"model": "model", "metrics": "metrics", "best_params": "report", "study": "report"}
    default_output = "model"
    aliases = {
        "max_trials": "n_trials",
        "trials": "n_trials",
        "metric": "objective_metric",
        "objective": "objective_metric",
        "model_type": "algorithm",
        "param_space": "search_space",
        "cv_folds": "cv",
        "random_state": "seed",
    }
    version = "1"
    expensive = True
    doc = "Search hyperparameters with Optuna (TPE or random), cross-validated; outputs the refitted best model."

    def tunable_hyperparameters(self, params: dict[str, Any]) -> set[str] | None:
        algo = ALGORITHMS.get(str(params.get("algorithm", "random_forest")))
        return set(algo.hyperparameters) if algo else None

    def run(self, params: HyperparameterTuningParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        data = require_dataset(inputs.get("data"))
        problem = resolve_problem(params.algorithm, params.problem, data.problem)
        metric = params.objective_metric or PRIMARY_METRIC[problem]
        direction = params.direction or direction_of(metric)
        summary = run_study(params, data, problem, metric, direction)
        best_params = summary["best_params"]
        model, metrics = train(
            data, params.algorithm, {**params.hyperparameters, **best_params}, problem, params.seed, ctx
        )
        scored = {**metrics, f"best_{metric}": float(summary["best_value"]), "trials": float(len(summary["trials"]))}
        return TaskOutputs(
            outputs={"model": model, "metrics": scored, "best_params": best_params, "study": summary},
            metrics=scored,
        )

