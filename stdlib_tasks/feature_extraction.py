"""``feature_extraction``: select or derive features from a dataset.

The extractor is fitted on the training split only and appended to the dataset's
``transform``, so raw rows scored later get the same features.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from stdlib_tasks._common import require_dataset


class FeatureExtractionParams(TaskParams):
    method: Literal["select_k_best", "pca", "polynomial", "variance_threshold"] = Field(
        default="select_k_best",
        description="select_k_best: keep the k features most related to the target (ANOVA F / "
        "F-regression); pca: principal components; polynomial: products of features up to "
        "`degree`; variance_threshold: drop features whose variance is at most `threshold`.",
    )
    k: int = Field(default=10, ge=1, description="select_k_best: features kept (all when the data has fewer).")
    n_components: float = Field(
        default=0.95, gt=0,
        description="pca: a count (>= 1) of components, or a fraction (< 1) of variance to keep.",
    )
    degree: int = Field(default=2, ge=1, le=5, description="polynomial: the maximal degree.")
    interaction_only: bool = Field(default=False, description="polynomial: only products of distinct features.")
    threshold: float = Field(default=0.0, ge=0, description="variance_threshold: minimal variance kept.")
    seed: int = Field(default=42, description="pca: seed of the randomized solver.")


class FeatureExtraction(TaskType):
    name = "feature_extraction"
    Params = FeatureExtractionParams
    inputs = {"data": InputSpec("dataset", doc="the dataset to transform")}
    outputs = {"output": "dataset"}
    default_output = "output"
    aliases = {"n_features": "k", "feature_selection_method": "method", "random_state": "seed"}
    version = "1"
    doc = "Select k best features, PCA, polynomial features or a variance threshold."

    def run(self, params: FeatureExtractionParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        import numpy as np  # noqa: PLC0415 - heavy: numpy only when the task runs
        from sklearn.pipeline import Pipeline  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

        data = require_dataset(inputs.get("data"))
        extractor = build_extractor(params, data)
        try:
            X_train = extractor.fit_transform(data.X_train, data.y_train)
        except ValueError as exc:  # e.g. variance threshold removing every feature
            raise TaskFailed(f"{params.method} failed: {exc}", hint="loosen the method's settings") from exc
        X_test = extractor.transform(data.X_test)
        try:
            names = tuple(str(n) for n in extractor.get_feature_names_out(list(data.feature_names)))
        except (AttributeError, ValueError):
            names = tuple(f"f{i}" for i in range(X_train.shape[1]))
        # the raw-rows -> features transform now ends with this extractor
        steps = [("preprocess", data.transform)] if data.transform is not None else []
        transform = Pipeline([*steps, (params.method, extractor)])
        out = data.with_changes(
            X_train=np.asarray(X_train, dtype=float),
            X_test=np.asarray(X_test, dtype=float),
            feature_names=names,
            transform=transform,
            raw_columns=data.raw_columns or data.feature_names,
        )
        return TaskOutputs(
            outputs={"output": out},
            metrics={"features_in": float(len(data.feature_names)), "features_out": float(len(names))},
        )


def build_extractor(params: FeatureExtractionParams, data: Any) -> Any:
    n_features = len(data.feature_names)
    if params.method == "select_k_best":
        from sklearn.feature_selection import SelectKBest, f_classif, f_regression  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

        score = f_classif if data.problem == "classification" else f_regression
        return SelectKBest(score, k=min(params.k, n_features))
    if params.method == "pca":
        from sklearn.decomposition import PCA  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

        n = params.n_components
        if n >= 1:
            if n != int(n):
                raise TaskFailed(f"n_components = {n} is neither a count nor a fraction below 1")
            n = min(int(n), n_features, data.n_train)
        return PCA(n_components=n, random_state=params.seed)
    if params.method == "polynomial":
        from sklearn.preprocessing import PolynomialFeatures  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

        return PolynomialFeatures(degree=params.degree, interaction_only=params.interaction_only, include_bias=False)
    from sklearn.feature_selection import VarianceThreshold  # noqa: PLC0415 - heavy: scikit-learn only when the task runs

    return VarianceThreshold(threshold=params.threshold)
