"""A trained model as an MLflow model directory in the sklearn flavour.

The fitted ``transform`` of the training data and the estimator become one scikit-learn
``Pipeline``, so the MLflow model scores *raw rows* (the columns of the source file), exactly as
``TrainedModel.predict`` does; ``mlflow.pyfunc.load_model`` loads it without mlflowdsl's code
beyond the transform's own classes. The input example is the first rows of the training data's
source file (when it is a CSV or Parquet file we can read), the signature is inferred from it.
The model is stored in MLflow's default format for scikit-learn, skops (no pickle).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mlflowdsl.errors import StateError
from mlflowdsl.ir import Plan
from mlflowdsl.tasks.values import Dataset, TrainedModel

log = logging.getLogger(__name__)

EXAMPLE_ROWS = 5


def sklearn_model(model: TrainedModel) -> Any:
    """The estimator, behind the raw-row transform when there is one."""
    from sklearn.pipeline import Pipeline  # noqa: PLC0415 - heavy: scikit-learn only when a model is exported

    if model.transform is None:
        return model.estimator
    return Pipeline([("transform", model.transform), ("estimator", model.estimator)])


def read_example(source: str, columns: tuple[str, ...], base_dir: str) -> Any | None:
    """The first rows of a CSV/Parquet ``source`` (relative to ``base_dir``), ``columns`` only."""
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when a model is exported

    if not source or ":" in source.split("/")[0]:  # sklearn:iris, s3://... : not read here
        return None
    path = source if os.path.isabs(source) else os.path.join(base_dir, source)
    try:
        if path.endswith(".parquet"):
            frame = pd.read_parquet(path).head(EXAMPLE_ROWS)
        else:
            frame = pd.read_csv(path, nrows=EXAMPLE_ROWS)
    except (OSError, ValueError) as exc:
        log.info("no input example for the MLflow model: cannot read %s (%s)", path, exc)
        return None
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            return None
        frame = frame[list(columns)]
    return frame


def save_mlflow_model(model: TrainedModel, path: str, *, example: Any | None = None) -> str:
    """Write ``model`` as an MLflow model directory at ``path`` (which must not exist yet)."""
    import mlflow.sklearn  # noqa: PLC0415 - heavy: mlflow only when tracking or exporting
    from mlflow.models import infer_signature  # noqa: PLC0415 - heavy: mlflow only when tracking or exporting

    sk = sklearn_model(model)
    signature = None
    if example is not None:
        signature = infer_signature(example, sk.predict(example))
    metadata = {"mlw_algorithm": model.algorithm, "mlw_problem": model.problem, "mlw_target": model.target,
                "mlw_task": model.name, "mlw_dataset_fingerprint": model.dataset_fingerprint}
    # The requirements are stated: left to MLflow, it infers them by loading the model in a
    # subprocess, which costs seconds per model.
    requirements = mlflow.sklearn.get_default_pip_requirements(include_skops=True)
    mlflow.sklearn.save_model(sk, path, signature=signature, input_example=example, metadata=metadata,
                              serialization_format="skops", skops_trusted_types=trusted_types(sk),
                              pip_requirements=requirements)
    return path


def trusted_types(sk: Any) -> list[str]:
    """The types skops does not trust by default that ``sk`` holds (e.g. the tree storage of a
    forest). We wrote the model ourselves from an estimator we fitted, so the MLflow model says
    to trust them; a model directory from elsewhere is still checked by skops on load."""
    import skops.io  # noqa: PLC0415 - heavy: skops only when a model is exported

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(sk)))


def _cached_outputs(settings: Any, task: Any, key: str | None) -> dict[str, Any]:
    from mlflowdsl.runtime.cache import open_cache  # noqa: PLC0415 - heavy: cache backends only when a model is logged

    if not key or task.cache.off:
        return {}
    hit, value = open_cache(task.cache.strategy, settings).get(key)
    if not hit:
        return {}
    return dict(getattr(value, "outputs", None) or {})


def trained_models(plan: Plan, execution: Any, task_id: str, settings: Any, base_dir: str) -> list[tuple[str, TrainedModel, Any]]:
    """The trained models a task's cached outputs hold, with an input example each:
    ``[(output name, model, example or None)]``. Empty when the outputs are not in a shared
    cache (cache off or in a worker's memory)."""
    by_id = plan.tasks_by_id()
    task = by_id.get(task_id)
    result = execution.tasks.get(task_id)
    if task is None or result is None:
        return []
    outputs = _cached_outputs(settings, task, result.cache_key)
    models = [(name, v) for name, v in outputs.items() if isinstance(v, TrainedModel)]
    if not models:
        return []
    source = ""
    for dep in task.dependencies:  # the training data: an upstream Dataset that names its source file
        dep_result = execution.tasks.get(dep)
        if dep in by_id and dep_result is not None:
            for value in _cached_outputs(settings, by_id[dep], dep_result.cache_key).values():
                if isinstance(value, Dataset) and value.source:
                    source = value.source
    return [(name, m, read_example(source, m.raw_columns, base_dir)) for name, m in models]


def export_version(registry: Any, ref: str, path: str) -> Any:
    """Write the registered version ``ref`` (``name/3``, ``name@champion``, ``name``) as an MLflow
    model directory at ``path``; returns its ``ModelVersion``. A ``TrainedModel`` scores raw rows
    (its transform included); any other registered scikit-learn object is saved as it is."""
    if os.path.exists(path):
        raise StateError(f"{path} already exists", subject=path, hint="give a directory that does not exist yet")
    mv = registry.resolve(ref)
    model = registry.load(mv)
    if not isinstance(model, TrainedModel):
        model = TrainedModel(estimator=model, algorithm=type(model).__name__, problem=mv.model_type or "",
                             feature_names=tuple(mv.signature.get("inputs") or ()), name=mv.name)
    save_mlflow_model(model, path)
    return mv
