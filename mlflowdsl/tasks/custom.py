"""``custom``: call a user function ``uses = "package.module:function"``; its schema comes
from the function's type hints.

* Parameters annotated with :class:`Dataset`, :class:`TrainedModel` (or ``X | None``: optional)
  or ``list[TrainedModel]`` / ``list[Dataset]`` (a ``train[*].model`` list) are **inputs**
  (references to other tasks' outputs). A parameter annotated :class:`TaskContext` receives
  the task context.
* Every other parameter is a configuration **param**: together they form a pydantic model
  (``extra="forbid"``, defaults kept, no annotation = any value, no default = required).
* The return value is the output ``output`` (its kind from the return annotation: ``dataset``,
  ``model`` or ``any``). If the function returns a :class:`TaskOutputs` it is used as is; if it
  returns a dict with a ``metrics`` dict, those numbers also become the task's metrics and the
  ``metrics`` output.

The compiler reads the schema from the module's source without importing it
(:func:`static_schema`, over :mod:`mlflowdsl.tasks.source`); the worker imports the module
when the task runs (:func:`schema_for`).

>>> def scale(data: Dataset, factor: float = 2.0, label="x") -> dict:
...     return {"rows": data.n_train * factor, "label": label}
>>> schema = _schema_of("example:scale", scale)
>>> sorted(schema.params_model.model_fields), sorted(schema.inputs), schema.outputs["output"]
(['factor', 'label'], ['data'], 'any')
"""

from __future__ import annotations

import ast
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import ConfigDict, ValidationError, create_model

from mlflowdsl.errors import MlwError
from mlflowdsl.tasks import InputSpec, TaskContext, TaskFailed, TaskOutputs, TaskParams, TaskType, load_function, signature_of
from mlflowdsl.tasks import freshness
from mlflowdsl.tasks.models import resolve_model
from mlflowdsl.tasks.source import check_at_run_time, find_function, static_signature
from mlflowdsl.tasks.values import Dataset, RowTransformError, TrainedModel, is_row_transform

_KINDS = {Dataset: "dataset", TrainedModel: "model"}


@dataclass(frozen=True)
class CustomSchema:
    uses: str
    params_model: type[TaskParams]
    inputs: dict[str, InputSpec]
    outputs: dict[str, str]
    context_parameter: str | None = None  # the parameter that receives the TaskContext
    row_input: str | None = None  # a @row_transform function: its input dataset (the first parameter)


class CustomParams(TaskParams):
    """The attributes of a custom task are checked against ``schema_for(uses).params_model``;
    this model only lets them through."""

    model_config = ConfigDict(extra="allow")


class Custom(TaskType):
    name = "custom"
    Params = CustomParams
    inputs = {}
    outputs = {"output": "any", "metrics": "metrics"}
    default_output = "output"
    version = "1"
    doc = "Call a Python function (uses = \"package.module:function\"); its type hints are its schema."

    @staticmethod
    def schema(uses: str) -> CustomSchema:
        return schema_for(uses)

    def tunable_hyperparameters(self, params: dict[str, Any]) -> set[str] | None:
        return None  # unknown: a custom function's parameters are not checked against a registry

    def run(self, params: TaskParams, inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        uses = (ctx.extra or {}).get("uses") if ctx is not None else None
        if not uses:
            raise TaskFailed("a custom task needs 'uses'", hint="pass it in ctx.extra['uses'], or call run_function")
        return self.run_function(uses, params.model_dump(), inputs, ctx)

    def run_function(self, uses: str, params: dict[str, Any], inputs: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
        """Validate ``params`` with the function's schema, resolve model URIs, call it."""
        base_dir = ctx.base_dir if ctx is not None else None
        if freshness.refresh(base_dir):  # project code edited while this worker lived
            schema_for.cache_clear()
        schema = schema_for(uses)
        load_function(uses)  # imported here too (schema_for is cached per uses), so remember sees its modules
        freshness.remember(base_dir)
        try:
            values = schema.params_model(**params).model_dump()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
            raise TaskFailed(f"bad parameters for {uses}: {problems}", hint="check the task's attributes") from None
        arguments: dict[str, Any] = dict(values)
        for name, spec in schema.inputs.items():
            value = inputs.get(name)
            if value is None:
                if spec.required:
                    raise TaskFailed(f"{uses} needs input {name!r}", hint=f"set {name} = <task>.<output>")
                arguments[name] = None
                continue
            if spec.kind == "model":
                value = ([resolve_model(v, ctx, attribute=name) for v in value] if spec.many
                         else resolve_model(value, ctx, attribute=name))
            arguments[name] = value
        if schema.context_parameter:
            arguments[schema.context_parameter] = ctx
        if schema.row_input:
            data = arguments.pop(schema.row_input)
            if not isinstance(data, Dataset):
                raise TaskFailed(f"{uses} is a row transform: {schema.row_input!r} must be a dataset, "
                                 f"got {type(data).__name__}", hint=f"set {schema.row_input} = <prep task>.output")
            try:
                return TaskOutputs(outputs={"output": data.with_row_transform(load_function(uses), arguments)})
            except RowTransformError as exc:
                raise TaskFailed(str(exc), retryable=False, hint="return one row per input row, numeric columns") from None
        return to_outputs(load_function(uses)(**arguments))


def to_outputs(result: Any) -> TaskOutputs:
    """A function's return value as TaskOutputs (see the module doc)."""
    if isinstance(result, TaskOutputs):
        return result
    if isinstance(result, dict) and isinstance(result.get("metrics"), dict):
        numbers = {k: float(v) for k, v in result["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return TaskOutputs(outputs={"output": result, "metrics": numbers}, metrics=numbers)
    return TaskOutputs(outputs={"output": result})


def static_schema(uses: str, base_dir: str) -> CustomSchema:
    """The schema of the function ``uses`` names, read from its module's source without
    importing it (raises MlwError when ``uses`` may not be named, cannot be found, or its
    signature cannot be a task). Cached per file version (``source.parse_file``)."""
    path, tree, fn = find_function(uses, base_dir)
    try:
        signature = static_signature(tree, fn)
    except (TypeError, ValueError) as exc:
        raise MlwError(f"cannot read the signature of {uses!r} ({path}:{fn.lineno}): {exc}", subject="uses") from exc
    return _schema_from(uses, fn.name, signature, row_transform=any(_names_row_transform(d) for d in fn.decorator_list))


@functools.lru_cache(maxsize=256)
def schema_for(uses: str) -> CustomSchema:
    """The schema of the function named by ``uses``, imported (the worker, when the task runs;
    raises MlwError when it may not be named, cannot be imported or its signature cannot be a
    task). The trust rule is applied again first (``source.check_at_run_time``)."""
    check_at_run_time(uses)
    try:
        fn = load_function(uses)
    except (ImportError, AttributeError) as exc:
        raise MlwError(
            f"cannot import {uses!r}: {exc}", subject="uses",
            hint="install the package that provides it, or fix the module/function name",
        ) from exc
    return _schema_of(uses, fn)


def _schema_of(uses: str, fn: Callable[..., Any]) -> CustomSchema:
    try:
        signature = signature_of(fn)
    except (NameError, TypeError, ValueError) as exc:
        raise MlwError(f"cannot read the signature of {uses!r}: {exc}", subject="uses") from exc
    return _schema_from(uses, getattr(fn, "__name__", "function"), signature, row_transform=is_row_transform(fn))


def _names_row_transform(decorator: ast.expr) -> bool:
    """Whether a decorator in the source is ``@row_transform`` (bare or as ``module.row_transform``)."""
    return (isinstance(decorator, ast.Name) and decorator.id == "row_transform") or \
        (isinstance(decorator, ast.Attribute) and decorator.attr == "row_transform")


def _schema_from(uses: str, name: str, signature: inspect.Signature, *, row_transform: bool = False) -> CustomSchema:
    fields: dict[str, Any] = {}
    inputs: dict[str, InputSpec] = {}
    context_parameter = None
    row_input = next(iter(signature.parameters), None) if row_transform else None
    if row_transform and row_input is None:
        raise MlwError(f"{uses} is a @row_transform but takes no parameter: its first one receives the rows",
                       subject="uses")
    for pname, parameter in signature.parameters.items():
        if pname == row_input:  # the rows: the task's dataset input
            inputs[pname] = InputSpec("dataset", doc="the dataset whose features the function transforms")
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise MlwError(f"{uses} takes *{pname}; a custom task function needs named parameters", subject="uses")
        annotation = Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
        has_default = parameter.default is not inspect.Parameter.empty
        if annotation is TaskContext:
            context_parameter = pname
            continue
        spec = _input_spec(annotation, optional_default=has_default and parameter.default is None)
        if spec is not None:
            inputs[pname] = spec
            continue
        fields[pname] = (annotation, parameter.default if has_default else ...)
    params_model = create_model(  # type: ignore[call-overload]
        f"{name}_params", __base__=TaskParams, **fields
    )
    returned = signature.return_annotation
    output_kind = _KINDS.get(returned, "any") if isinstance(returned, type) else "any"
    if row_input:
        output_kind = "dataset"
    return CustomSchema(uses, params_model, inputs, {"output": output_kind, "metrics": "metrics"}, context_parameter,
                        row_input)


def _input_spec(annotation: Any, *, optional_default: bool) -> InputSpec | None:
    """An InputSpec for a value-class annotation, None for a plain parameter."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            annotation, optional, origin = members[0], True, typing.get_origin(members[0])
    many = False
    if origin in (list, typing.List):
        args = typing.get_args(annotation)
        if len(args) == 1:
            annotation, many = args[0], True
    kind = _KINDS.get(annotation) if isinstance(annotation, type) else None
    if kind is None:
        return None
    return InputSpec(kind, required=not (optional or optional_default), many=many, accepts_uri=kind == "model")
