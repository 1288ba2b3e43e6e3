"""Metric names and their computation.

Names are plain constants (cheap to import, used by the param models to check thresholds and
objectives at compile time); the computation imports scikit-learn lazily.

Loss metrics (``log_loss``, ``rmse``, ``mae``) are better when lower: a validation threshold on
them is a maximum and tuning minimizes them by default.

>>> direction_of("rmse"), direction_of("accuracy")
('minimize', 'maximize')
"""

from __future__ import annotations

import logging
from typing import Any

from mlflowdsl.tasks.search import LOSS_METRICS, direction_of  # noqa: F401 - part of this module's vocabulary
from stdlib_tasks.algorithms import did_you_mean

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("r2", "rmse", "mae")
ALL_METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS
PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}

log = logging.getLogger(__name__)


def metrics_for(problem: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if problem == "classification" else REGRESSION_METRICS


def check_metric_name(name: str) -> None:
    """ValueError with a suggestion for an unknown metric name (compile-time check)."""
    if name not in ALL_METRICS:
        suggestion = did_you_mean(name, ALL_METRICS) or f"; known: {', '.join(ALL_METRICS)}"
        raise ValueError(f"unknown metric {name!r}{suggestion}")


def compute_metrics(model: Any, X: Any, y: Any, *, problem: str, only: tuple[str, ...] | None = None) -> dict[str, float]:
    """Score a fitted ``TrainedModel``-like object (``predict_features``/``predict_proba_features``)
    on ``X, y``. Classification: accuracy, f1, precision, recall (binary: the second class is the
    positive one; multiclass: macro averages), roc_auc and log_loss when probabilities exist.
    Regression: r2, rmse, mae. Metrics that cannot be computed are left out."""
    import numpy as np  # noqa: PLC0415 - heavy: numpy only when metrics are computed
    from sklearn import metrics as skm  # noqa: PLC0415 - heavy: scikit-learn only when metrics are computed

    wanted = set(only) if only else set(metrics_for(problem))
    pred = model.predict_features(X)
    y = np.asarray(y)
    out: dict[str, float] = {}
    if problem == "regression":
        if "r2" in wanted:
            out["r2"] = float(skm.r2_score(y, pred))
        if "rmse" in wanted:
            out["rmse"] = float(np.sqrt(skm.mean_squared_error(y, pred)))
        if "mae" in wanted:
            out["mae"] = float(skm.mean_absolute_error(y, pred))
        return out

    classes = model.classes if getattr(model, "classes", None) is not None else sorted(set(y.tolist()))
    binary = len(classes) == 2
    averaging: dict[str, Any] = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    if "accuracy" in wanted:
        out["accuracy"] = float(skm.accuracy_score(y, pred))
    for name, fn in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)):
        if name in wanted:
            out[name] = float(fn(y, pred, zero_division=0, **averaging))
    if wanted & {"roc_auc", "log_loss"}:
        proba = model.predict_proba_features(X)
        if proba is None and binary and "roc_auc" in wanted and hasattr(model.estimator, "decision_function"):
            # margins rank as well as probabilities do (SVMs, ridge classifiers)
            if len(set(y.tolist())) > 1:
                out["roc_auc"] = float(skm.roc_auc_score(y == classes[1], model.estimator.decision_function(X)))
        if proba is not None:
            present = set(y.tolist())
            if "roc_auc" in wanted and len(present) > 1:
                try:
                    if binary:
                        out["roc_auc"] = float(skm.roc_auc_score(y == classes[1], proba[:, 1]))
                    elif present == set(classes):
                        out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
                except ValueError as exc:  # undefined for this split (e.g. a class missing): left out
                    log.debug("roc_auc left out: %s", exc)
            if "log_loss" in wanted:
                out["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
    return out


def confusion(model: Any, X: Any, y: Any) -> dict[str, Any]:
    """Confusion matrix as plain lists: ``{"labels": [...], "matrix": [[...]]}`` (rows = truth)."""
    import numpy as np  # noqa: PLC0415 - heavy: numpy only when metrics are computed
    from sklearn.metrics import confusion_matrix  # noqa: PLC0415 - heavy: scikit-learn only when metrics are computed

    pred = model.predict_features(X)
    labels = model.classes if getattr(model, "classes", None) is not None else sorted(set(np.asarray(y).tolist()))
    matrix = confusion_matrix(y, pred, labels=labels)
    return {"labels": [_plain(v) for v in labels], "matrix": matrix.tolist()}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (so reports are JSON-serializable)."""
    return value.item() if hasattr(value, "item") else value
