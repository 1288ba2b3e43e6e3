"""Python functions used as `custom` tasks by examples/custom/custom_step.mlw.

A custom task's schema is its function's signature: parameters annotated with a value class
(``Dataset``, ``TrainedModel``) are inputs that receive other tasks' outputs; the others are
attributes of the task, checked at compile time like any task's. The return value is the
task's ``output``.

The workflow names this module ``custom_steps`` (``uses = "custom_steps:oversample_minority"``).
The compiler imports it to read the signature, from the workflow file's directory; the runtime
also puts that directory on the Dask workers' import path, so no ``PYTHONPATH`` is needed.
"""

from __future__ import annotations

from mlflowdsl.tasks import Dataset


def oversample_minority(data: Dataset, ratio: float = 0.5, seed: int = 0) -> Dataset:
    """Repeat random training rows of the rarest class until it has ``ratio`` times as many
    rows as the most common class. The test split is left alone, so metrics stay honest.

    >>> d = Dataset(X_train=[[0.0], [1.0], [2.0], [3.0]], X_test=[[0.0]], y_train=[0, 0, 0, 1],
    ...             y_test=[0], feature_names=("x",), target="y", problem="classification")
    >>> list(oversample_minority(d, ratio=1.0).y_train).count(1)
    3
    """
    import numpy as np  # noqa: PLC0415 - imported when the step runs, not when the compiler reads the signature

    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    X, y = np.asarray(data.X_train), np.asarray(data.y_train)
    classes, counts = np.unique(y, return_counts=True)
    rare, wanted = classes[counts.argmin()], int(counts.max() * ratio)
    missing = wanted - counts.min()
    if missing <= 0:
        return data
    rng = np.random.default_rng(seed)
    extra = rng.choice(np.flatnonzero(y == rare), size=missing, replace=True)
    return data.with_changes(X_train=np.concatenate([X, X[extra]]), y_train=np.concatenate([y, y[extra]]))
