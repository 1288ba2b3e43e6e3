"""``data_preprocessing``: load a table, clean it, encode and scale it, split train/test.

The transformer (imputation, encoding, scaling) is fitted on the training split only, so no
test information leaks into training, and it travels with the dataset so models can score
raw rows later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mlflowdsl.tasks import DataProblem, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from mlflowdsl.tasks.values import Dataset
from stdlib_tasks._common import SKLEARN_DATASETS, SKLEARN_TARGET, read_table, unknown_columns
from stdlib_tasks.data_checks import check_table

# An integer target with at most this many distinct values is taken as class labels.
_MAX_CLASSES_FOR_AUTO = 20


class DataPreprocessingParams(TaskParams):
    source: str = Field(
        description="The data: a CSV or Parquet path (relative to the workflow file), a URL of an "
        "installed fsspec filesystem (`s3://bucket/key.csv`, `https://...`, `file:///...`), or "
        "`sklearn:<name>` for a bundled dataset (iris, wine, breast_cancer, digits, diabetes).",
    )
    target: str | None = Field(
        default=None,
        description="The target column. Required for files; `target` for sklearn: sources.",
    )
    problem: Literal["auto", "classification", "regression"] = Field(
        default="auto",
        description="auto: classification when the target is text/boolean or an integer with at "
        f"most {_MAX_CLASSES_FOR_AUTO} distinct values, regression otherwise.",
    )
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Fraction of rows held out for testing.")
    seed: int = Field(default=42, description="Seed of the train/test split.")
    impute: Literal["mean", "median", "most_frequent", "none"] = Field(
        default="median", description="How missing numeric values are filled (text columns: most frequent)."
    )
    scale: Literal["standard", "minmax", "none"] = Field(default="standard", description="Numeric scaling.")
    encode: Literal["onehot", "ordinal", "none"] = Field(
        default="onehot", description="Encoding of text/categorical columns (none: such columns are an error)."
    )
    drop: list[str] = Field(default_factory=list, description="Columns to drop before anything else (ids...).")
    stratify: bool = Field(default=True, description="Keep class proportions in both splits (classification).")


class DataPreprocessing(TaskType):
    name = "data_preprocessing"
    Params = DataPreprocessingParams
    inputs = {}
    outputs = {"output": "dataset"}
    default_output = "output"
    aliases = {
        "dataset_path": "source",
        "data_path": "source",
        "path": "source",
        "target_column": "target",
        "label": "target",
        "problem_type": "problem",
        "random_state": "seed",
        "scaling": "scale",
        "encoding": "encode",
        "imputation": "impute",
    }
    version = "1"
    reads = ("source",)
    doc = "Load a CSV/Parquet file or bundled dataset, impute, encode, scale and split it."

    @classmethod
    def check_data(cls, params: dict[str, Any], base_dir: str) -> list[DataProblem]:
        source = params.get("source")
        if not isinstance(source, str):
            return []
        return check_table(source, base_dir, target=params.get("target"), target_required=not source.startswith("sklearn:"),
                           drop=list(params.get("drop") or []))

    def run(self, params: DataPreprocessingParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        frame = read_table(params.source, ctx)
        is_bundled = params.source.startswith("sklearn:")
        target = params.target or (SKLEARN_TARGET if is_bundled else None)
        if target is None:
            raise TaskFailed(
                f"no target column given for {params.source}",
                hint="set target = \"<column>\" (the column to predict)",
            )
        unknown_columns(frame, params.drop, "drop", params.source)
        unknown_columns(frame, [target], "target", params.source)
        frame = frame.drop(columns=params.drop).dropna(subset=[target])
        if len(frame) < 4:
            raise TaskFailed(f"{params.source} has only {len(frame)} usable row(s)", hint="need at least 4 rows")

        y = frame[target]
        X = frame.drop(columns=[target])
        problem = params.problem
        if problem != "regression" and not _is_numeric(y) and len(y) >= 50 and y.nunique() == len(y):
            raise TaskFailed(f"target {target!r} of {params.source} has a different value in each of its {len(y)} rows: "
                             "free text or an id, not a label", hint="choose a column with repeated classes")
        if problem == "auto":
            problem = SKLEARN_DATASETS[params.source[8:]] if is_bundled else infer_problem(y)
        if problem == "regression" and not _is_numeric(y):
            raise TaskFailed(
                f"target {target!r} is not numeric, so it cannot be a regression target",
                hint='set problem = "classification" or choose a numeric target',
            )
        return TaskOutputs(outputs={"output": split_and_transform(X, y, target, problem, params)},
                           metrics={"rows": float(len(frame)), "columns": float(X.shape[1])})


def infer_problem(y: Any) -> str:
    """The problem type a target column suggests.

    >>> import pandas as pd
    >>> infer_problem(pd.Series([0, 1, 1])), infer_problem(pd.Series([0.5, 1.2]))
    ('classification', 'regression')
    """
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when the task runs

    if not _is_numeric(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= _MAX_CLASSES_FOR_AUTO:
        return "classification"
    return "regression"


def _is_numeric(y: Any) -> bool:
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when the task runs

    return pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)


def split_and_transform(X: Any, y: Any, target: str, problem: str, params: DataPreprocessingParams) -> Any:
    import numpy as np  # noqa: PLC0415 - heavy: numpy only when the task runs
    from sklearn.model_selection import train_test_split  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

    stratify = None
    if problem == "classification" and params.stratify:
        counts = y.value_counts()
        n_test = int(np.ceil(params.test_size * len(y)))
        # train_test_split refuses to stratify with a class of one row or fewer test rows than classes
        if counts.min() >= 2 and n_test >= len(counts) and len(y) - n_test >= len(counts):
            stratify = y
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=params.test_size, random_state=params.seed, stratify=stratify
    )
    transform = build_transform(X, params)
    try:
        Xt_train = transform.fit_transform(X_train)
        Xt_test = transform.transform(X_test)
    except (TypeError, ValueError) as exc:  # a column scikit-learn cannot take as it is
        raise TaskFailed(f"cannot preprocess {params.source}: {exc}", hint="drop or fix the offending columns") from exc
    names = tuple(str(n) for n in transform.get_feature_names_out())
    y_kind = "float" if problem == "regression" else None
    return Dataset(
        X_train=np.asarray(Xt_train, dtype=float),
        X_test=np.asarray(Xt_test, dtype=float),
        y_train=y_train.to_numpy(dtype=y_kind),
        y_test=y_test.to_numpy(dtype=y_kind),
        feature_names=names,
        target=target,
        problem=problem,
        transform=transform,
        raw_columns=tuple(str(c) for c in X.columns),
        source=params.source,
    )


def build_transform(X: Any, params: DataPreprocessingParams) -> Any:
    """An unfitted ColumnTransformer: numeric columns imputed and scaled, text columns imputed
    and encoded."""
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when the task runs
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415 - heavy: scikit-learn only when the task runs
    from sklearn.impute import SimpleImputer  # noqa: PLC0415 - heavy: scikit-learn only when the task runs
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415 - heavy: scikit-learn only when the task runs
    from sklearn.preprocessing import (  # noqa: PLC0415 - heavy: scikit-learn only when the task runs
        MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler,
    )

    temporal = [str(c) for c in X.columns
                if pd.api.types.is_datetime64_any_dtype(X[c]) or pd.api.types.is_timedelta64_dtype(X[c])]
    if temporal:
        raise TaskFailed(
            f"column(s) {', '.join(temporal)} hold dates or durations, which are not features as they are",
            hint="drop them (drop = [...]) or derive numeric columns from them in a custom task",
        )
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    if categorical and params.encode == "none":
        raise TaskFailed(
            f"column(s) {', '.join(map(str, categorical))} are not numeric and encode = \"none\"",
            hint='set encode = "onehot" or "ordinal", or drop those columns',
        )
    numeric_steps: list[Any] = []
    if params.impute != "none":
        numeric_steps.append(SimpleImputer(strategy=params.impute))
    if params.scale == "standard":
        numeric_steps.append(StandardScaler())
    elif params.scale == "minmax":
        numeric_steps.append(MinMaxScaler())
    parts: list[tuple[str, Any, list[Any]]] = []
    if numeric:
        parts.append(("num", make_pipeline(*numeric_steps) if numeric_steps else "passthrough", numeric))
    if categorical:
        encoder = (
            OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            if params.encode == "onehot"
            else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        )
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), categorical))
    if not parts:
        raise TaskFailed("no feature columns left after dropping the target", hint="check drop and target")
    return ColumnTransformer(parts, verbose_feature_names_out=False)
