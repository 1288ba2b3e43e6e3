"""Building and fitting estimators from the algorithm registry (shared by ``model_training``
and ``hyperparameter_tuning``). scikit-learn is imported lazily."""

from __future__ import annotations

import importlib
import time
from typing import Any, Callable

from mlflowdsl.tasks import TaskFailed, TaskPruned
from mlflowdsl.tasks.values import TrainedModel
from stdlib_tasks.algorithms import ALGORITHMS, did_you_mean
from stdlib_tasks.metrics import compute_metrics

# Boosting models are grown in this many chunks so progress can be reported (and pruned).
_STAGE_CHUNKS = 10


def resolve_problem(algorithm: str, requested: str, data_problem: str) -> str:
    problem = data_problem if requested == "auto" else requested
    if requested != "auto" and requested != data_problem:
        raise TaskFailed(
            f"problem = {requested!r} but the dataset is a {data_problem} dataset",
            hint='set problem = "auto" or preprocess with the matching problem',
        )
    algo = ALGORITHMS[algorithm]
    if problem not in algo.problems:
        raise TaskFailed(
            f"algorithm {algorithm!r} cannot be used for {problem}",
            hint=f"{algorithm} supports {', '.join(algo.problems)}; for {problem} try e.g. "
            + ("random_forest or logistic_regression" if problem == "classification" else "random_forest or ridge"),
        )
    return problem


def build_estimator(algorithm: str, problem: str, hyperparameters: dict[str, Any], seed: int | None) -> Any:
    """A fresh estimator; unknown hyperparameters (per the estimator's own ``get_params``) and
    values it rejects raise TaskFailed."""
    algo = ALGORITHMS.get(algorithm)
    if algo is None:
        raise TaskFailed(f"unknown algorithm {algorithm!r}{did_you_mean(algorithm, ALGORITHMS)}")
    path = algo.estimator_path(problem)
    if path is None:
        raise TaskFailed(f"algorithm {algorithm!r} cannot be used for {problem}")
    module, _, cls_name = path.partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    accepted = set(cls().get_params())
    for name in sorted(hyperparameters):
        if name not in accepted:
            raise TaskFailed(
                f"unknown hyperparameter {name!r} for {algorithm} ({cls_name}){did_you_mean(name, accepted)}",
                hint=f"accepted: {', '.join(sorted(accepted))}",
            )
    settings = dict(hyperparameters)
    if "hidden_layer_sizes" in settings and isinstance(settings["hidden_layer_sizes"], list):
        settings["hidden_layer_sizes"] = tuple(settings["hidden_layer_sizes"])  # JSON has no tuples
    if seed is not None and "random_state" in accepted and "random_state" not in settings:
        settings["random_state"] = seed
    try:
        estimator = cls(**settings)
        estimator._validate_params()  # reject bad values now, with the estimator's own message
    except (TypeError, ValueError) as exc:
        raise TaskFailed(f"invalid hyperparameters for {algorithm}: {exc}", hint="check the values") from exc
    except AttributeError:
        pass  # older scikit-learn without _validate_params: fit will check
    return estimator


def fit_estimator(
    estimator: Any,
    algorithm: str,
    X: Any,
    y: Any,
    *,
    score: Callable[[Any], float] | None = None,
    report: Callable[[int, float], bool] | None = None,
) -> float:
    """Fit and return the seconds it took. Staged algorithms (gradient boosting) are grown in
    chunks with ``warm_start``; after each chunk ``score(estimator)`` is passed to
    ``report(n_stages, value)``, and a True answer stops training (:class:`TaskPruned`)."""
    started = time.perf_counter()
    try:
        if ALGORITHMS[algorithm].staged and score is not None and report is not None:
            _fit_staged(estimator, X, y, score, report)
        else:
            estimator.fit(X, y)
    except TaskPruned:
        raise
    except (ValueError, TypeError) as exc:
        raise TaskFailed(f"{algorithm} failed to train: {exc}", hint="check the data and hyperparameters") from exc
    return time.perf_counter() - started


def _fit_staged(estimator: Any, X: Any, y: Any, score: Callable[[Any], float], report: Callable[[int, float], bool]) -> None:
    total = int(estimator.get_params()["n_estimators"])
    chunk = max(1, total // _STAGE_CHUNKS)
    stages = 0
    while stages < total:
        stages = min(total, stages + chunk)
        estimator.set_params(n_estimators=stages, warm_start=True)
        estimator.fit(X, y)
        done = getattr(estimator, "n_estimators_", stages)
        if report(stages, float(score(estimator))):
            raise TaskPruned(f"stopped early after {stages} of {total} stages", step=stages)
        if done < stages:  # the estimator's own early stopping (n_iter_no_change) ended it
            break
    estimator.set_params(warm_start=False)


def make_folds(X: Any, y: Any, problem: str, folds: int, seed: int) -> list[tuple[Any, Any]]:
    """Shuffled (stratified for classification) k-fold index pairs."""
    from sklearn.model_selection import KFold, StratifiedKFold  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

    splitter = (StratifiedKFold if problem == "classification" else KFold)(folds, shuffle=True, random_state=seed)
    try:
        return list(splitter.split(X, y))
    except ValueError as exc:
        raise TaskFailed(f"cannot make {folds} folds: {exc}", hint="use fewer folds (cv) for small datasets") from exc


def cross_validated_metrics(
    estimator: Any, algorithm: str, problem: str, X: Any, y: Any, folds: list[tuple[Any, Any]],
    only: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the folds, fitting a fresh clone of ``estimator`` per fold;
    metrics missing in any fold are left out."""
    from sklearn.base import clone  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

    per_fold = []
    for train_idx, test_idx in folds:
        est = clone(estimator)
        fit_estimator(est, algorithm, X[train_idx], y[train_idx])
        wrapped = TrainedModel(estimator=est, algorithm=algorithm, problem=problem, feature_names=())
        per_fold.append(compute_metrics(wrapped, X[test_idx], y[test_idx], problem=problem, only=only))
    names = set.intersection(*(set(m) for m in per_fold)) if per_fold else set()
    return {name: float(sum(m[name] for m in per_fold) / len(per_fold)) for name in sorted(names)}
