"""The values that flow between standard tasks: :class:`Dataset` and :class:`TrainedModel`.

Both are plain picklable dataclasses (they travel between Dask workers and into the cache).
Importing this module is cheap: numpy/pandas are only touched by the methods that need them.

A ``Dataset`` is already split and transformed into a numeric matrix. It keeps the fitted
``transform`` (imputation, encoding, scaling, feature extraction) that maps *raw* rows (the
columns of the source file) to that matrix, so a model trained on it can score raw files
later (batch inference) with exactly the same preprocessing.

>>> d = Dataset(X_train=[[1.0]], X_test=[[2.0]], y_train=[0], y_test=[1],
...             feature_names=("x",), target="y", problem="classification")
>>> d
Dataset(problem='classification', target='y', train=1, test=1, features=1)
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable


def fingerprint_arrays(*parts: Any) -> str:
    """A sha256 over arrays and plain values (numeric arrays by their bytes, others by pickle).

    >>> fingerprint_arrays([1, 2]) == fingerprint_arrays([1, 2])
    True
    """
    import numpy as np  # noqa: PLC0415 - heavy: numpy only when a value is fingerprinted

    digest = hashlib.sha256()
    for part in parts:
        arr = np.asarray(part) if isinstance(part, (list, tuple)) or hasattr(part, "__array__") else None
        if arr is not None and arr.dtype.kind in "biufc":
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
        elif arr is not None:
            digest.update(pickle.dumps([str(v) for v in arr.ravel().tolist()], protocol=4))
        else:
            digest.update(pickle.dumps(part, protocol=4))
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of numeric features and a target.

    ``transform`` (optional) is a fitted scikit-learn transformer from the raw columns
    ``raw_columns`` to the feature matrix; ``None`` means the raw columns are the features.
    """

    X_train: Any
    X_test: Any
    y_train: Any
    y_test: Any
    feature_names: tuple[str, ...]
    target: str
    problem: str  # "classification" | "regression"
    transform: Any = None
    raw_columns: tuple[str, ...] = ()
    source: str = ""
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            fp = fingerprint_arrays(self.X_train, self.X_test, self.y_train, self.y_test, list(self.feature_names))
            object.__setattr__(self, "fingerprint", fp)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def with_changes(self, **changes: Any) -> "Dataset":
        """A copy with some fields replaced and the fingerprint recomputed."""
        return replace(self, fingerprint="", **changes)

    def transform_rows(self, frame: Any) -> Any:
        """Raw rows (a DataFrame with ``raw_columns``) -> the feature matrix."""
        return frame_to_features(frame, self.transform, self.raw_columns)

    def with_row_transform(self, fn: Callable[..., Any], params: dict[str, Any] | None = None) -> "Dataset":
        """This dataset with ``fn`` (a ``@row_transform`` function: features DataFrame ->
        DataFrame) applied to both splits and appended to ``transform``, so a model trained on
        the result applies it to raw rows too (batch inference, serving)."""
        step = RowTransform(self.transform, self.feature_names, fn, params or {})
        X_train, names = step.apply(self.X_train)
        X_test, _ = step.apply(self.X_test)
        return self.with_changes(X_train=X_train, X_test=X_test, feature_names=names, transform=step,
                                 raw_columns=self.raw_columns or self.feature_names)

    def __repr__(self) -> str:
        return (
            f"Dataset(problem={self.problem!r}, target={self.target!r}, train={self.n_train}, "
            f"test={self.n_test}, features={len(self.feature_names)})"
        )


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A fitted estimator plus what is needed to use it on raw rows.

    ``predict(rows)`` takes raw rows (a DataFrame, a list of dicts or a 2-D array in
    ``raw_columns`` order) and applies the dataset's ``transform`` first; ``predict_features``
    takes an already transformed matrix (a ``Dataset``'s ``X_test``).
    """

    estimator: Any
    algorithm: str
    problem: str
    feature_names: tuple[str, ...]
    target: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    transform: Any = None
    raw_columns: tuple[str, ...] = ()
    name: str = ""  # the task that trained it (``train[random_forest]``)
    dataset_fingerprint: str = ""

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.estimator, "classes_", None)
        return None if classes is None else list(classes)

    def predict_features(self, X: Any) -> Any:
        return self.estimator.predict(X)

    def predict_proba_features(self, X: Any) -> Any | None:
        if self.problem != "classification" or not hasattr(self.estimator, "predict_proba"):
            return None
        try:
            return self.estimator.predict_proba(X)
        except AttributeError:  # e.g. SVC(probability=False) exposes the method but refuses
            return None

    def features_of(self, rows: Any) -> Any:
        return frame_to_features(rows, self.transform, self.raw_columns)

    def predict(self, rows: Any) -> Any:
        return self.estimator.predict(self.features_of(rows))

    def predict_proba(self, rows: Any) -> Any | None:
        return self.predict_proba_features(self.features_of(rows))

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in list(self.metrics.items())[:3]}
        return f"TrainedModel({self.name or self.algorithm!r}, {self.problem}, metrics={shown})"


def row_transform(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Declare a custom step's function row-wise: it takes the dataset's features as a pandas
    DataFrame (one column per feature) and returns a DataFrame with one row per input row
    (columns added, changed or dropped). Used as ``uses = "module:fn"``, its first parameter is
    the task's dataset input; the tool applies it at training and evaluation, and it travels
    with the trained model into batch inference and serving (docs/language.md, "Feature steps
    that travel with the model"). The function itself is unchanged."""
    fn.__mlw_row_transform__ = True  # type: ignore[attr-defined]
    return fn


def is_row_transform(fn: Any) -> bool:
    return bool(getattr(fn, "__mlw_row_transform__", False))


class RowTransformError(ValueError):
    """A row transform broke its contract (not a DataFrame, rows added or dropped, non-numeric)."""


class RowTransform:
    """Raw rows -> features through ``base`` (the dataset's transform, or none), then a
    ``@row_transform`` function on the features as a DataFrame. The function's code is kept by
    value, so a model using it loads and scores where the user's module is not importable (a
    deployment's server)."""

    def __init__(self, base: Any, columns: tuple[str, ...], fn: Callable[..., Any], params: dict[str, Any]):
        self.base = base
        self.columns = tuple(columns)
        self.params = dict(params)
        self.function = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
        self.code = _by_value(fn)
        self.output_columns: tuple[str, ...] = ()
        self._fn: Callable[..., Any] | None = fn

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fn"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fn = None

    def apply(self, features: Any) -> tuple[Any, tuple[str, ...]]:
        """The function over a feature matrix: (new matrix, its column names)."""
        import numpy as np  # noqa: PLC0415 - heavy: numpy only when rows are transformed
        import pandas as pd  # noqa: PLC0415 - heavy: pandas only when rows are transformed

        matrix = features.toarray() if hasattr(features, "toarray") else np.asarray(features, dtype=float)
        frame = pd.DataFrame(matrix, columns=list(self.columns))
        if self._fn is None:
            import cloudpickle  # noqa: PLC0415 - heavy: cloudpickle only when a loaded model first scores

            self._fn = cloudpickle.loads(self.code)
        out = self._fn(frame.copy(), **self.params)
        if not isinstance(out, pd.DataFrame):
            raise RowTransformError(f"{self.function} returned {type(out).__name__}, not a pandas DataFrame")
        if len(out) != len(frame):
            raise RowTransformError(f"{self.function} returned {len(out)} rows for {len(frame)}: a row transform "
                                    "keeps one row per input row (filter rows in a Dataset step instead)")
        wrong = [str(c) for c in out.columns if not pd.api.types.is_numeric_dtype(out[c])]
        if wrong:
            raise RowTransformError(f"{self.function} returned non-numeric column(s): {', '.join(wrong)}")
        names = tuple(str(c) for c in out.columns)
        if self.output_columns and names != self.output_columns:
            raise RowTransformError(f"{self.function} returned columns {list(names)}, trained with "
                                    f"{list(self.output_columns)}")
        self.output_columns = names
        return out.to_numpy(dtype=float), names

    def transform(self, frame: Any) -> Any:
        import numpy as np  # noqa: PLC0415 - heavy: numpy only when rows are scored

        features = np.asarray(frame, dtype=float) if self.base is None else self.base.transform(frame)
        return self.apply(features)[0]

    def __repr__(self) -> str:
        return f"RowTransform({self.function}, params={self.params})"


def _by_value(fn: Callable[..., Any]) -> bytes:
    """``fn`` pickled with its module's code (cloudpickle by value), not as an import path."""
    import cloudpickle  # noqa: PLC0415 - heavy: cloudpickle only when a row transform is fitted

    module = sys.modules.get(getattr(fn, "__module__", ""))
    if module is None or module.__name__ in sys.stdlib_module_names or module.__name__.startswith("mlflowdsl"):
        return cloudpickle.dumps(fn)
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(fn)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


class MissingColumns(ValueError):
    def __init__(self, missing: list[str]):
        super().__init__(f"missing column(s): {', '.join(missing)}")
        self.missing = missing


def frame_to_features(rows: Any, transform: Any, raw_columns: tuple[str, ...]) -> Any:
    """Raw rows -> feature matrix: select ``raw_columns`` (in order) and apply ``transform``."""
    import numpy as np  # noqa: PLC0415 - heavy: numpy only when rows are scored
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when rows are scored

    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        rows = pd.DataFrame(rows)
    if isinstance(rows, pd.DataFrame):
        if raw_columns:
            missing = [c for c in raw_columns if c not in rows.columns]
            if missing:
                raise MissingColumns(missing)
            rows = rows[list(raw_columns)]
        frame = rows
    else:
        matrix = np.asarray(rows)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        frame = pd.DataFrame(matrix, columns=list(raw_columns)) if raw_columns else matrix
    if transform is None:
        return np.asarray(frame, dtype=float)
    return transform.transform(frame)
