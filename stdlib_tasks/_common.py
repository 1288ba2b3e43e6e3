"""Helpers shared by the standard tasks: reading tables, checking inputs, turning user
mistakes into :class:`TaskFailed` with a hint. Heavy imports stay inside functions."""

from __future__ import annotations

import os
from typing import Any

from mlflowdsl.files import is_url
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
    """Load ``source`` as a DataFrame: a CSV/Parquet path or URL (any installed fsspec
    filesystem: ``s3://``, ``https://``, ``file://``...) or ``sklearn:<name>``.

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
    if is_url(source):
        return _read_url(source)
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


def _read_url(url: str) -> Any:
    """A CSV/Parquet table read through fsspec (credentials and endpoint: the backend's own
    configuration, for S3 the ``AWS_*`` variables)."""
    import fsspec  # noqa: PLC0415 - fsspec only when a source is a URL
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when a task reads a table

    lowered = url.split("?", 1)[0].lower()
    if lowered.endswith((".parquet", ".pq")):
        reader = pd.read_parquet
    elif lowered.endswith((".csv", ".csv.gz", ".txt")):
        reader = pd.read_csv
    else:
        raise TaskFailed(f"unsupported file type: {url}", hint="use a .csv or .parquet file")
    try:
        with fsspec.open(url, "rb", compression="infer") as fh:
            return reader(fh)
    except FileNotFoundError:
        raise TaskFailed(f"data file not found: {url}", hint="check the URL (bucket, key, host)") from None
    except (ImportError, ValueError) as exc:
        if isinstance(exc, ImportError) or "protocol" in str(exc).lower():
            raise TaskFailed(f"cannot read {url}: no filesystem for this URL ({exc})",
                             hint="install its fsspec backend, e.g. pip install 'mlflowdsl[s3]' for s3://") from None
        raise TaskFailed(f"cannot read {url}: {exc}", hint="the file must be a valid CSV or Parquet table") from None
    except PermissionError as exc:
        raise TaskFailed(f"cannot read {url}: access denied ({exc})",
                         hint="for S3 set AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from None
    except Exception as exc:  # noqa: BLE001 - network errors and malformed tables: say which and why
        raise TaskFailed(f"cannot read {url}: {type(exc).__name__}: {exc}",
                         hint="check that the store is reachable and the file is a valid CSV or Parquet table") from None


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
