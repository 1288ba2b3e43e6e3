"""Model inputs as task types receive them: a ``TrainedModel`` passed by another task, a path to
a ``.joblib`` file, or a registry URI loaded through ``ctx.services``."""

from __future__ import annotations

import os
from typing import Any

from mlflowdsl.tasks import TaskContext, TaskFailed
from mlflowdsl.tasks.services import RegistryError
from mlflowdsl.tasks.values import TrainedModel


def resolve_path(ctx: TaskContext | None, path: str) -> str:
    return ctx.resolve_path(path) if ctx is not None else path


def resolve_model(value: Any, ctx: TaskContext | None, *, attribute: str = "model") -> TrainedModel:
    """A model input: a ``TrainedModel``, a path to a ``.joblib`` file, or a registry URI
    (``models:/NAME@ALIAS``, ``models:/NAME/3``, ``models:/NAME/LABEL``) loaded from the model
    registry with its checksum verified."""
    if isinstance(value, TrainedModel):
        return value
    if isinstance(value, str):
        if value.startswith("models:/"):
            return load_registered(value, ctx)
        return load_model_file(resolve_path(ctx, value), value)
    raise TaskFailed(
        f"{attribute} must be a trained model, got {type(value).__name__}",
        hint=f"pass a model_training/hyperparameter_tuning output, e.g. {attribute} = train.model",
    )


def load_registered(uri: str, ctx: TaskContext | None) -> TrainedModel:
    """The model a ``models:/`` URI names, as a TaskFailed with a hint when it cannot be."""
    if ctx is None:
        raise TaskFailed(f"cannot load {uri} without a task context", hint="run the task with `mlw run`")
    try:
        registry = ctx.services.open_registry()
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


def load_model_file(path: str, shown: str) -> TrainedModel:
    import joblib  # noqa: PLC0415 - heavy: joblib only when a model file is read

    if not os.path.exists(path):
        raise TaskFailed(f"model not found: {shown} ({path})", hint="check the name and version or path")
    loaded = joblib.load(path)
    if not isinstance(loaded, TrainedModel):
        raise TaskFailed(f"{path} does not hold a model written by mlflowdsl", hint="deploy a trained model first")
    return loaded
