"""Helpers shared by the standard tasks: reading tables, resolving model inputs, turning
user mistakes into :class:`TaskFailed` with a hint. Heavy imports stay inside functions."""

from __future__ import annotations

import os
from typing import Any

from mlflowdsl.files import atomic_path, atomic_write_bytes  # noqa: F401 - re-exported for the task modules
from mlflowdsl.tasks import TaskContext, TaskFailed

# Bundled scikit-learn datasets usable as ``source = "sklearn:<name>"`` (no download needed).
SKLEARN_DATASETS: dict[str, str] = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
SKLEARN_TARGET = "target"


def resolve(ctx: TaskContext | None, path: str) -> str:
    return ctx.resolve_path(path) if ctx is not None else path


def read_table(source: str, ctx: TaskContext | None) -> Any:
    """Load ``source`` as a DataFrame: a CSV/Parquet path or ``sklearn:<name>``.

    For ``sklearn:`` sources the target is the column ``target``."""
    import pandas as pd

    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        if name not in SKLEARN_DATASETS:
            from stdlib_tasks.algorithms import did_you_mean

            raise TaskFailed(
                f"unknown bundled dataset {name!r}{did_you_mean(name, SKLEARN_DATASETS)}",
                hint=f"bundled datasets: {', '.join('sklearn:' + n for n in SKLEARN_DATASETS)}",
            )
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        return bunch.frame
    path = resolve(ctx, source)
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
    from stdlib_tasks.algorithms import did_you_mean

    for column in columns:
        if column not in frame.columns:
            raise TaskFailed(
                f"{what} column {column!r} not found in {source}{did_you_mean(column, map(str, frame.columns))}",
                hint=f"available columns: {', '.join(map(str, frame.columns))}",
            )


def resolve_model(value: Any, ctx: TaskContext | None, *, attribute: str = "model") -> Any:
    """A model input: a ``TrainedModel``, a path to a ``.joblib`` file, or a registry URI
    (``models:/NAME@ALIAS``, ``models:/NAME/3``, ``models:/NAME/LABEL``) loaded from the model
    registry with its checksum verified."""
    from stdlib_tasks.values import TrainedModel

    if isinstance(value, TrainedModel):
        return value
    if isinstance(value, str):
        if value.startswith("models:/"):
            return load_registered(value, ctx)
        return load_model_file(resolve(ctx, value), value)
    raise TaskFailed(
        f"{attribute} must be a trained model, got {type(value).__name__}",
        hint=f"pass a model_training/hyperparameter_tuning output, e.g. {attribute} = train.model",
    )


def task_settings(ctx: TaskContext | None) -> Any:
    """The run's settings (the worker puts them in ``ctx.extra``), else the environment's."""
    settings = (ctx.extra.get("settings") if ctx is not None else None)
    if settings is None:
        from mlflowdsl.settings import load_settings

        settings = load_settings()
    return settings


def open_task_registry(ctx: TaskContext | None) -> Any:
    from mlflowdsl.runtime.registry import open_registry

    return open_registry(task_settings(ctx))


def load_registered(uri: str, ctx: TaskContext | None) -> Any:
    """The model a ``models:/`` URI names, as a TaskFailed with a hint when it cannot be."""
    from mlflowdsl.runtime.registry import RegistryError
    from stdlib_tasks.values import TrainedModel

    try:
        registry = open_task_registry(ctx)
        try:
            loaded = registry.load(uri)
        finally:
            registry.close()
    except RegistryError as exc:
        raise TaskFailed(f"model not found: {uri}: {exc.args[0]}",
                         hint=exc.hint or "`mlw models ls` lists the registered models") from None
    if not isinstance(loaded, TrainedModel):
        raise TaskFailed(f"{uri} does not hold a model trained by mlflowdsl", hint="register a trained model")
    return loaded


def load_model_file(path: str, shown: str) -> Any:
    import joblib

    from stdlib_tasks.values import TrainedModel

    if not os.path.exists(path):
        raise TaskFailed(f"model not found: {shown} ({path})", hint="check the name and version or path")
    loaded = joblib.load(path)
    if not isinstance(loaded, TrainedModel):
        raise TaskFailed(f"{path} does not hold a model written by mlflowdsl", hint="deploy a trained model first")
    return loaded


def require_dataset(value: Any, attribute: str = "data") -> Any:
    from stdlib_tasks.values import Dataset

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
