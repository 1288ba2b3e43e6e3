"""The request shapes of other model servers, turned into the rows ``/predict`` takes, and their
answers: MLflow's scoring protocol (``POST /invocations``) and the V2 open inference protocol
of KServe and Triton (``/v2/...``), so that clients written for them work unchanged.

MLflow (``{"dataframe_split": {"columns": [...], "data": [[...]]}}``, ``{"dataframe_records":
[{...}]}``, ``{"instances": ...}`` or ``{"inputs": ...}``; instances/inputs may be a list of
rows or a dict of columns):

>>> mlflow_rows({"dataframe_split": {"columns": ["x", "c"], "data": [[1, "a"], [2, "b"]]}})
([{'x': 1, 'c': 'a'}, {'x': 2, 'c': 'b'}], False)
>>> mlflow_rows({"inputs": {"x": [1, 2], "c": ["a", "b"]}})
([{'x': 1, 'c': 'a'}, {'x': 2, 'c': 'b'}], False)

V2 (one input tensor per column, or one ``[rows, columns]`` tensor in the model's column order):

>>> v2_rows({"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]},
...                     {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}, ["x", "c"])
([{'x': 1.5, 'c': 'a'}, {'x': 2.5, 'c': 'b'}], False)
>>> v2_rows({"inputs": [{"name": "in", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}, ["x", "y"])
([[1, 2]], False)
"""

from __future__ import annotations

import math
from typing import Any

from mlflowdsl.runtime.registry.serving.bodies import BadRequest

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
V2_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _probabilities(flag: Any, where: str) -> bool:
    if flag is None:
        return False
    if not isinstance(flag, bool):
        raise BadRequest(422, f'"{where}" must be true or false')
    return flag


def _columns_to_rows(columns: dict[str, Any], where: str) -> list[dict[str, Any]]:
    lists = {name: values if isinstance(values, list) else [values] for name, values in columns.items()}
    lengths = {len(v) for v in lists.values()}
    if len(lengths) != 1:
        raise BadRequest(422, f"{where}: every column needs the same number of values, got "
                         + ", ".join(f"{k}: {len(v)}" for k, v in lists.items()))
    names = list(lists)
    return [dict(zip(names, values)) for values in zip(*lists.values())]


def mlflow_rows(data: Any) -> tuple[list[Any], bool]:
    """(rows, probabilities wanted) of an MLflow ``/invocations`` body."""
    if not isinstance(data, dict):
        raise BadRequest(400, "the body must be a JSON object with one of the keys " + ", ".join(MLFLOW_KEYS))
    present = [k for k in MLFLOW_KEYS if k in data]
    if len(present) != 1:
        raise BadRequest(400, "the body must have exactly one of the keys " + ", ".join(MLFLOW_KEYS)
                         + (f"; got {', '.join(present)}" if present else f"; got {', '.join(map(str, data)) or 'none'}"))
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest(400, '"params" must be an object')
    probabilities = _probabilities(data.get("probabilities", params.get("probabilities")), "probabilities")
    key = present[0]
    value = data[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise BadRequest(400, '"dataframe_split" must be {"columns": [...], "data": [[...], ...]}')
        columns = value.get("columns")
        if columns is None:
            return value["data"], probabilities
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest(400, '"dataframe_split" "columns" must be a list of column names')
        if any(not isinstance(row, list) or len(row) != len(columns) for row in value["data"]):
            raise BadRequest(422, f'every "dataframe_split" row must be a list of {len(columns)} values')
        return [dict(zip(columns, row)) for row in value["data"]], probabilities
    if key == "dataframe_records":
        return value, probabilities
    if isinstance(value, dict):  # {"column": [values...]}: columnar
        return _columns_to_rows(value, f'"{key}"'), probabilities
    return value, probabilities


def _v2_values(tensor: dict[str, Any], i: int) -> tuple[str, list[int], list[Any]]:
    if not isinstance(tensor, dict) or not {"name", "shape", "datatype", "data"} <= set(tensor):
        raise BadRequest(400, f"inputs[{i}] must be an object with name, shape, datatype and data")
    name, shape, datatype, data = tensor["name"], tensor["shape"], tensor["datatype"], tensor["data"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(400, f"inputs[{i}] ({name}): shape must be a list of sizes, got {shape!r}"[:200])
    if datatype not in V2_NUMERIC and datatype != "BYTES":
        raise BadRequest(400, f"inputs[{i}] ({name}): datatype {datatype!r} is not served; use BYTES, FP*, INT* or "
                         "UINT* (BOOL is refused: a model would read it as 0/1)"[:300])
    flat = data
    while flat and isinstance(flat[0], list):  # row-major nested data is allowed
        flat = [x for part in flat for x in part]
    if not isinstance(flat, list) or len(flat) != math.prod(shape):
        raise BadRequest(400, f"inputs[{i}] ({name}): {len(flat) if isinstance(flat, list) else 'no'} values for "
                         f"shape {shape} ({math.prod(shape)} values)")
    wanted = str if datatype == "BYTES" else (int, float)
    bad = next((j for j, v in enumerate(flat) if isinstance(v, bool) or not isinstance(v, wanted)), None)
    if bad is not None:
        raise BadRequest(422, f"inputs[{i}] ({name}): value {bad}, {flat[bad]!r}, is not a {datatype} value"[:200])
    return name, shape, flat


def v2_rows(data: Any, columns: list[str]) -> tuple[list[Any], bool]:
    """(rows, probabilities wanted) of a V2 ``infer`` body for a model with ``columns``."""
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise BadRequest(400, 'the body must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(400, '"parameters" must be an object')
    probabilities = _probabilities(parameters.get("probabilities"), "parameters.probabilities")
    tensors = [_v2_values(t, i) for i, t in enumerate(data["inputs"])]
    if len(tensors) == 1 and len(tensors[0][1]) == 2:  # one [rows, columns] tensor
        _name, (n, k), flat = tensors[0]
        if columns and k != len(columns):
            raise BadRequest(422, f"a [rows, columns] input needs {len(columns)} columns in this order: "
                             + ", ".join(columns) + f"; got {k}")
        return [flat[r * k:(r + 1) * k] for r in range(n)], probabilities
    by_name = {}
    for name, shape, flat in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise BadRequest(400, f"input {name}: one input per column needs shape [rows] or [rows, 1], got {shape}")
        by_name[name] = flat
    return _columns_to_rows(by_name, "inputs"), probabilities


def v2_datatype(values: list[Any]) -> str:
    if values and all(isinstance(v, str) for v in values):
        return "BYTES"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    return "FP64"


def v2_outputs(predictions: list[Any], probabilities: list[Any] | None) -> list[dict[str, Any]]:
    outputs = [{"name": "predict", "shape": [len(predictions)], "datatype": v2_datatype(predictions),
                "data": predictions}]
    if probabilities is not None:
        width = len(probabilities[0]) if probabilities else 0
        outputs.append({"name": "predict_proba", "shape": [len(probabilities), width], "datatype": "FP64",
                        "data": [p for row in probabilities for p in row]})
    return outputs


def input_datatypes(model: Any, columns: list[str]) -> dict[str, str]:
    """The V2 datatype of each input column: numbers (``FP64``) for a model without
    preprocessing; with a fitted ``ColumnTransformer`` of the stdlib (parts ``num`` and
    ``cat``), ``FP64`` for the numeric columns and ``BYTES`` for the others."""
    transform = getattr(model, "transform", None)
    if transform is None:
        return {c: "FP64" for c in columns}
    numeric: set[str] = set()
    for name, _step, cols in getattr(transform, "transformers_", ()):
        if name == "num" and isinstance(cols, (list, tuple)):
            numeric.update(map(str, cols))
    return {c: "FP64" if c in numeric else "BYTES" for c in columns}
