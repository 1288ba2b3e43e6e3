"""The Optuna study behind ``hyperparameter_tuning`` (optuna and scikit-learn imported lazily).

A trial whose hyperparameters the estimator rejects (e.g. an incompatible solver/penalty pair)
is recorded as failed with its error and the study goes on; only if no trial succeeds does
the task fail.
"""

from __future__ import annotations

import math
from typing import Any

from mlflowdsl.ir import SearchDim
from mlflowdsl.tasks import TaskFailed, TaskPruned
from mlflowdsl.tasks.search import make_pruner, make_sampler
from mlflowdsl.tasks.search import suggest as suggest_dim
from mlflowdsl.tasks.values import TrainedModel
from stdlib_tasks.metrics import compute_metrics
from stdlib_tasks.training import build_estimator, cross_validated_metrics, fit_estimator, make_folds

# Share of the training split held out to score trials when cv = 0.
_VALIDATION_FRACTION = 0.25


def dimension(name: str, spec: Any) -> Any:
    """A ``SearchSpec`` as a ``SearchDim`` (one space code for both tuning paths)."""
    if spec.kind == "choice":
        return SearchDim(name=name, kind="choice", choices=list(spec.choices))
    return SearchDim(name=name, kind=spec.kind, low=spec.min, high=spec.max, log=spec.log, step=spec.step)


def suggest(trial: Any, name: str, spec: Any) -> Any:
    return suggest_dim(trial, dimension(name, spec))


def run_study(params: Any, data: Any, problem: str, metric: str, direction: str) -> dict[str, Any]:
    """Run the study; returns a plain-dict summary (best value and params, trials table)."""
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The same sampler and pruner construction as `tune` blocks (mlflowdsl.tasks.search); the
    # trials of this task form stay in-process (one task, one worker).
    dims = [dimension(n, s) for n, s in sorted(params.search_space.items())]
    sampler = make_sampler(params.sampler, params.seed, dims)
    # the median pruner waits for Optuna's default 5 completed trials and never prunes at the first step
    pruner = make_pruner(params.pruner, params.n_trials, startup=5, warmup=1)
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    scorer = _CrossValidation(data, problem, params.cv, params.seed) if params.cv else _Holdout(data, problem, params.seed)

    def objective(trial: Any) -> float:
        hyper = {**params.hyperparameters, **{n: suggest(trial, n, s) for n, s in sorted(params.search_space.items())}}
        try:
            estimator = build_estimator(params.algorithm, problem, hyper, params.seed)
            return scorer.score(estimator, params.algorithm, metric, trial)
        except TaskPruned as exc:
            raise optuna.TrialPruned(str(exc)) from exc
        except _MetricUnavailable:
            raise
        except TaskFailed as exc:
            trial.set_user_attr("error", exc.message)
            return math.nan  # optuna records a NaN objective as a failed trial

    try:
        study.optimize(objective, n_trials=params.n_trials, timeout=params.study_timeout)
    except _MetricUnavailable as exc:
        raise TaskFailed(
            f"objective metric {metric!r} cannot be computed for {params.algorithm} on a {problem} problem",
            hint="choose a metric of the problem type (roc_auc/log_loss need probabilities)",
        ) from exc
    return summarize(study, metric, direction, params.sampler)


def summarize(study: Any, metric: str, direction: str, sampler: str) -> dict[str, Any]:
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": dict(t.params),
            **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
        }
        for t in study.trials
    ]
    if not complete:
        errors = sorted({t["error"] for t in trials if "error" in t})
        raise TaskFailed(
            "no tuning trial succeeded" + (f"; first error: {errors[0]}" if errors else ""),
            hint="check the search space and the fixed hyperparameters",
        )
    return {
        "metric": metric,
        "direction": direction,
        "sampler": sampler,
        "best_value": study.best_value,
        "best_params": dict(study.best_params),
        "best_trial": study.best_trial.number,
        "trials": trials,
    }


class _MetricUnavailable(Exception):
    pass


def _metric(model: Any, X: Any, y: Any, problem: str, metric: str) -> float:
    values = compute_metrics(model, X, y, problem=problem, only=(metric,))
    if metric not in values:
        raise _MetricUnavailable(metric)
    return values[metric]


def _wrap(estimator: Any, algorithm: str, problem: str) -> Any:
    return TrainedModel(estimator=estimator, algorithm=algorithm, problem=problem, feature_names=())


class _CrossValidation:
    """Mean metric over k folds of the training split."""

    def __init__(self, data: Any, problem: str, folds: int, seed: int):
        self.X, self.y, self.problem = data.X_train, data.y_train, problem
        self.folds = make_folds(self.X, self.y, problem, folds, seed)

    def score(self, estimator: Any, algorithm: str, metric: str, trial: Any) -> float:
        values = cross_validated_metrics(estimator, algorithm, self.problem, self.X, self.y, self.folds, only=(metric,))
        if metric not in values:
            raise _MetricUnavailable(metric)
        return values[metric]


class _Holdout:
    """Metric on a validation slice of the training split; staged algorithms report per stage
    to the trial, so the pruner can stop them."""

    def __init__(self, data: Any, problem: str, seed: int):
        from sklearn.model_selection import train_test_split  # noqa: PLC0415 - heavy: scikit-learn only when a study runs

        stratify = data.y_train if problem == "classification" else None
        try:
            self.X_fit, self.X_val, self.y_fit, self.y_val = train_test_split(
                data.X_train, data.y_train, test_size=_VALIDATION_FRACTION, random_state=seed, stratify=stratify
            )
        except ValueError:
            self.X_fit, self.X_val, self.y_fit, self.y_val = train_test_split(
                data.X_train, data.y_train, test_size=_VALIDATION_FRACTION, random_state=seed
            )
        self.problem = problem

    def score(self, estimator: Any, algorithm: str, metric: str, trial: Any) -> float:
        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        def current(est: Any) -> float:
            return _metric(_wrap(est, algorithm, self.problem), self.X_val, self.y_val, self.problem, metric)

        fit_estimator(estimator, algorithm, self.X_fit, self.y_fit, score=current, report=report)
        return current(estimator)
