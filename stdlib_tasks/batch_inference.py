"""``batch_inference``: score a table partition by partition and write the predictions
atomically (a temporary file renamed into place, so readers never see a partial file). An
``output`` URL (``s3://...``) is written locally first and then uploaded in one put, which
object stores make visible whole or not at all."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import Field, field_validator

from mlflowdsl.files import atomic_path, is_url
from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType
from mlflowdsl.tasks.models import resolve_model
from mlflowdsl.tasks.values import MissingColumns
from stdlib_tasks._common import read_table, unknown_columns


class BatchInferenceParams(TaskParams):
    source: str = Field(
        description="The rows to score: a CSV/Parquet path (relative to the workflow file), a URL "
        "(`s3://...`, `https://...`) or `sklearn:<name>`; they must have the model's raw input columns (a target column is ignored).",
    )
    output: str | None = Field(
        default=None,
        description="Where to write predictions (.csv or .parquet; relative to the workflow file, or a "
        "URL such as `s3://bucket/scores.csv`, uploaded once complete). Default: <artifact_dir>/<task id>/predictions.csv.",
    )
    partitions: int = Field(default=4, ge=1, le=10_000, description="Number of partitions scored one after another.")
    columns: list[str] = Field(default_factory=list, description="Input columns copied to the output (ids...).")
    prediction_column: str = Field(default="prediction", description="Name of the prediction column.")
    probabilities: bool = Field(default=False, description="Also write one probability column per class.")

    @field_validator("output")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().endswith((".csv", ".parquet")):
            raise ValueError(f"output {value!r} must end in .csv or .parquet")
        return value


class BatchInference(TaskType):
    name = "batch_inference"
    Params = BatchInferenceParams
    inputs = {"model": InputSpec("model", accepts_uri=True, doc="the model to score with")}
    outputs = {"predictions": "predictions"}
    default_output = "predictions"
    aliases = {
        "dataset_path": "source",
        "input_path": "source",
        "data_path": "source",
        "output_path": "output",
        "num_partitions": "partitions",
        "keep_columns": "columns",
    }
    version = "1"
    sink = True
    side_effects = True
    reads = ("source",)
    doc = "Predict over a file partition by partition; the output file is written atomically."

    def run(self, params: BatchInferenceParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        import numpy as np  # noqa: PLC0415 - heavy: numpy only when the task runs

        model = resolve_model(inputs.get("model"), ctx)
        frame = read_table(params.source, ctx)
        unknown_columns(frame, params.columns, "kept", params.source)
        if model.target and model.target in frame.columns and model.target not in params.columns:
            frame = frame.drop(columns=[model.target])
        remote = params.output if params.output and is_url(params.output) else None
        if remote:  # written beside the artifacts, then uploaded
            output = os.path.join(ctx.artifact_dir, _safe_dir(ctx.task_id), os.path.basename(remote.split("?", 1)[0]))
        elif params.output:
            output = ctx.resolve_path(params.output)
        else:
            output = os.path.join(ctx.artifact_dir, _safe_dir(ctx.task_id), "predictions.csv")
        started = time.perf_counter()
        bounds = np.array_split(np.arange(len(frame)), min(params.partitions, max(1, len(frame))))
        parquet = output.lower().endswith(".parquet")
        rows = 0
        with atomic_path(output) as tmp:
            writer = None
            for index, part in enumerate(bounds):
                chunk = frame.iloc[part] if len(part) else frame.iloc[0:0]
                scored = score_partition(model, chunk, params)
                if parquet:
                    writer = _write_parquet(writer, tmp, scored)
                else:
                    scored.to_csv(tmp, mode="w" if index == 0 else "a", header=index == 0, index=False)
                rows += len(scored)
            if writer is not None:
                writer.close()
            ctx.check_owner(f"the output file {remote or output}")  # the rename below is the side effect
        if remote:
            _upload(output, remote)
        seconds = time.perf_counter() - started
        result = {"path": remote or os.path.abspath(output), "rows": rows, "partitions": len(bounds),
                  "format": "parquet" if parquet else "csv"}
        return TaskOutputs(
            outputs={"predictions": result},
            metrics={"rows": float(rows), "rows_per_second": rows / seconds if seconds > 0 else 0.0},
            artifacts={"predictions": os.path.abspath(output)},  # the local copy, for the artifact store
        )


def score_partition(model: Any, chunk: Any, params: BatchInferenceParams) -> Any:
    import pandas as pd  # noqa: PLC0415 - heavy: pandas only when the task runs

    out = chunk[params.columns].reset_index(drop=True) if params.columns else pd.DataFrame(index=range(len(chunk)))
    if len(chunk) == 0:
        out[params.prediction_column] = []
        return out
    try:
        features = model.features_of(chunk)
    except MissingColumns as exc:
        raise TaskFailed(
            f"the rows to score lack the model's input column(s): {', '.join(exc.missing)}",
            hint="score a file with the same columns as the training data",
        ) from exc
    out[params.prediction_column] = model.predict_features(features)
    if params.probabilities:
        proba = model.predict_proba_features(features)
        if proba is None:
            raise TaskFailed(f"{model.algorithm} gives no probabilities", hint="set probabilities = false")
        for i, label in enumerate(model.classes or []):
            out[f"proba_{label}"] = proba[:, i]
    return out


def _write_parquet(writer: Any, path: str, scored: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - heavy: pyarrow only when predictions go to Parquet
    import pyarrow.parquet as pq  # noqa: PLC0415 - heavy: pyarrow only when predictions go to Parquet

    table = pa.Table.from_pandas(scored, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


def _upload(local: str, url: str) -> None:
    """``local`` to ``url`` in one put (fsspec; credentials from the backend's configuration)."""
    import fsspec  # noqa: PLC0415 - fsspec only when the output is a URL

    try:
        fs, path = fsspec.core.url_to_fs(url)
        fs.put_file(local, path)
    except ImportError as exc:
        raise TaskFailed(f"cannot write {url}: no filesystem for this URL ({exc})",
                         hint="install its fsspec backend, e.g. pip install 'mlflowdsl[s3]' for s3://") from None
    except Exception as exc:  # noqa: BLE001 - network and permission errors of any backend: say which and why
        raise TaskFailed(f"cannot write {url}: {type(exc).__name__}: {exc}",
                         hint=f"check that the store is reachable and writable; the predictions are in {local}") from None


def _safe_dir(task_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in task_id)
