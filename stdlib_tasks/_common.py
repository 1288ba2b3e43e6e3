"""Helpers shared by the standard tasks: reading tables, checking inputs, turning user
mistakes into :class:`TaskFailed` with a hint. Heavy imports stay inside functions."""

from __future__ import annotations

import os
from typing import Any

from mlflowdsl.tasks import TaskContext, TaskFailed
from mlflowdsl.tasks.models import resolve_path
from mlflowdsl.tasks.values import Dataset
from stdlib_tasks.algorithms import did_you_mean

# Bundled scikit-learn datasets usable as ``source = "sklearn:<name>"`` (no download needed).
SKLEARN_DATASETS: dict[str, str] = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
SKLEARN_TARGET = "target"


def read_table(source: str, ctx: TaskContext | None) -> Any:
    """Load ``source`` as a DataFrame: a CSV/Parquet path or ``sklearn:<name>``.

    For ``sklearn:`` sources the target is the column ``target``."""
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when a task reads a table

    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        if name not in SKLEARN_DATASETS:
            raise TaskFailed(
                f"unknown bundled dataset {name!r}{did_you_mean(name, SKLEARN_DATASETS)}",
                hint=f"bundled datasets: {', '.join('sklearn:' + n for n in SKLEARN_DATASETS)}",
            )
        from sklearn import datasets  # noqa: PLC0415 - heavy: scikit-learn only when a bundled dataset is read

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        return bunch.frame
    path = resolve_path(ctx, source)
    if not os.path.exists(path):
        raise TaskFailed(
            f"data file not found: {path}",
            hint="check the path; relative paths are relative to the workflow file's directory",
        )
    lowered = path.lower()
    try:
        if lowered.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if lowered.endswith((".csv", ".csv.gz", ".txt")):
            return pd.read_csv(path)
    except Exception as exc:  # a malformed file is the user's input: say which and why
        raise TaskFailed(f"cannot read {path}: {exc}", hint="the file must be a valid CSV or Parquet table") from exc
    raise TaskFailed(f"unsupported file type: {path}", hint="use a .csv or .parquet file")


def unknown_columns(frame: Any, columns: list[str], what: str, source: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise TaskFailed(
                f"{what} column {column!r} not found in {source}{did_you_mean(column, map(str, frame.columns))}",
                hint=f"available columns: {', '.join(map(str, frame.columns))}",
            )


def require_dataset(value: Any, attribute: str = "data") -> Any:
    if not isinstance(value, Dataset):
        raise TaskFailed(
            f"{attribute} must be a dataset, got {type(value).__name__}",
            hint=f"pass a data_preprocessing/feature_extraction output, e.g. {attribute} = prep.output",
        )
    return value


def check_model_fits_data(model: Any, data: Any) -> None:
    """A model can only score a dataset with the features it was trained on."""
    if model.feature_names and tuple(model.feature_names) != tuple(data.feature_names):
        extra = sorted(set(data.feature_names) - set(model.feature_names))[:5]
        missing = sorted(set(model.feature_names) - set(data.feature_names))[:5]
        raise TaskFailed(
            f"model {model.name or model.algorithm!r} was trained on {len(model.feature_names)} features but the "
            f"dataset has {len(data.feature_names)}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unexpected: {', '.join(extra)})" if extra else ""),
            hint="score the model on the dataset it was trained on (e.g. the feature_extraction output)",
        )
