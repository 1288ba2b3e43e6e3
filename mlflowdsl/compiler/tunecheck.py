"""``tune`` blocks checked and turned into ``ir.Tuning``.

MLW207 unknown target task, MLW213 a task type with nothing to tune, MLW214 unknown
hyperparameter (checked against the type's ``tunable_hyperparameters``), MLW215 a bad space
(min > max, empty choice, log scale with a low bound <= 0, unknown sampler or pruner),
MLW203/MLW204/MLW205 for the block's own fields.
"""

from __future__ import annotations

import logging
from typing import Any

from mlflowdsl.compiler.directives import Problem, integer, quantity
from mlflowdsl.compiler.evaluate import did_you_mean, to_text
from mlflowdsl.compiler.model import CallValue, Qty, RAttr, RTune
from mlflowdsl.grammar.diagnostics import Diagnostic
from mlflowdsl.ir import Objective, SearchDim, SourceSpan, Tuning

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("none", "median", "hyperband")
FIELDS = ("objective", "trials", "parallel", "sampler", "pruner", "seed", "timeout")
SPACES = ("int", "float", "choice")


def check_tunes(tunes, checked: dict, task_ids: dict, diags: list[Diagnostic]) -> list[Tuning]:
    """``checked``: task id -> CheckedTask (tasks that passed typecheck); ``task_ids``: every
    resolved task id (so a target whose own check failed is not reported twice)."""
    out: list[Tuning] = []
    seen: dict[str, Any] = {}
    for tune in tunes:
        if tune.target not in task_ids:
            diags.append(Diagnostic("MLW207", f"`tune` names unknown task `{tune.target}`", tune.target_span,
                                    hint=did_you_mean(tune.target, task_ids)))
            continue
        if tune.target in seen:
            diags.append(Diagnostic("MLW209", f"task `{tune.target}` is tuned twice", tune.target_span,
                                    hint=f"first tuned at line {seen[tune.target].line}"))
            continue
        seen[tune.target] = tune.target_span
        task = checked.get(tune.target)
        tuning = _check(tune, task, diags)
        if tuning is not None:
            out.append(tuning)
    return out


def _check(tune: RTune, task, diags: list[Diagnostic]) -> Tuning | None:
    n = len(diags)
    fields: dict[str, Any] = {}
    for a in tune.attrs:
        if a.name not in FIELDS:
            diags.append(Diagnostic("MLW203", f"unknown field `{a.name}` in `tune`", a.name_span,
                                    hint=did_you_mean(a.name, FIELDS) or f"tune fields: {', '.join(FIELDS)}"))
            continue
        try:
            fields[a.name] = _FIELD_CHECKS[a.name](a)
        except Problem as p:
            diags.append(Diagnostic(p.code, f"`{a.name}`: {p.message}", a.span, hint=p.hint))
    search = None
    for b in tune.blocks:
        if b.name != "search":
            diags.append(Diagnostic("MLW202", f"unknown block `{b.name}` in `tune`", b.name_span,
                                    hint=did_you_mean(b.name, ["search"]) or "a tune block has one `search { }` block"))
            continue
        search = b
    if search is None:
        diags.append(Diagnostic("MLW205", "`tune` needs a `search { }` block", tune.span,
                                hint="e.g. search { max_depth = int(3, 20) }"))
    if "objective" not in fields and not any(a.name == "objective" for a in tune.attrs):
        diags.append(Diagnostic("MLW205", "`tune` needs an `objective`", tune.span,
                                hint="e.g. objective = maximize(accuracy)"))
    dims: list[SearchDim] = []
    if search is not None:
        tunable = _tunable(task)
        if tunable is not None and not tunable:
            diags.append(Diagnostic("MLW213", f"task `{tune.target}` ({task.type.name}) has no tunable hyperparameters",
                                    tune.target_span, hint="tune a model_training task"))
        for a in search.attrs:
            if tunable and a.name not in tunable:
                diags.append(Diagnostic("MLW214", f"`{a.name}` is not a hyperparameter of `{tune.target}`", a.name_span,
                                        hint=did_you_mean(a.name, tunable) or f"tunable: {', '.join(sorted(tunable))}"))
                continue
            try:
                dims.append(_dim(a))
            except Problem as p:
                diags.append(Diagnostic(p.code, f"`{a.name}`: {p.message}", a.span, hint=p.hint))
    if fields.get("sampler") == "grid":
        for d in dims:
            if d.kind == "float" and d.step is None:
                attr = next(a for a in search.attrs if a.name == d.name)
                diags.append(Diagnostic("MLW215", f"`{d.name}`: grid search needs a finite space", attr.span,
                                        hint="give the float dimension a step, or use choice(...)"))
    if len(diags) > n or task is None:
        return None
    s = tune.span
    return Tuning(task=tune.target, search=sorted(dims, key=lambda d: d.name), span=SourceSpan(
        file=s.file, line=s.line, column=s.column, end_line=s.end_line, end_column=s.end_column), **fields)


def _tunable(task) -> set[str] | None:
    if task is None:
        return None
    try:
        return task.type.cls().tunable_hyperparameters(task.config)
    except Exception as exc:  # a plug-in that cannot tell: leave the names unchecked
        log.debug("%s.tunable_hyperparameters failed, search names unchecked: %r", task.type.name, exc)
        return None


def _number(value: Any, what: str) -> float:
    if isinstance(value, Qty):
        value = value.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Problem("MLW204", f"{what} must be a number, got {to_text(value)!r}")
    return value


def _dim(a: RAttr) -> SearchDim:
    call = a.value
    if not isinstance(call, CallValue) or call.func not in SPACES:
        raise Problem("MLW204", "a search dimension is int(low, high), float(low, high) or choice(a, b, ...)",
                      "e.g. max_depth = int(3, 20)")
    positional = [x.value for x in call.args if x.name is None]
    named = {x.name: x.value for x in call.args if x.name is not None}
    if call.func == "choice":
        if named:
            raise Problem("MLW203", f"choice() takes no named arguments (got {', '.join(named)})")
        if not positional:
            raise Problem("MLW215", "choice() needs at least one value")
        if any(isinstance(v, (dict, list, CallValue)) for v in positional):
            raise Problem("MLW204", "choice() values are names, strings, numbers or booleans")
        return SearchDim(name=a.name, kind="choice", choices=[v.value if isinstance(v, Qty) else v for v in positional])
    for key in named:
        if key not in ("log", "step"):
            raise Problem("MLW203", f"{call.func}() has no argument `{key}`", did_you_mean(key, ["log", "step"]))
    if len(positional) != 2:
        raise Problem("MLW204", f"{call.func}() needs a low and a high bound, e.g. {call.func}(1, 10)")
    low, high = (_number(v, "a bound") for v in positional)
    if call.func == "int" and not all(float(v).is_integer() for v in (low, high)):
        raise Problem("MLW204", "int() bounds must be whole numbers", "use float(low, high) for fractions")
    log = named.get("log", False)
    if not isinstance(log, bool):
        raise Problem("MLW204", "`log` must be true or false")
    step = named.get("step")
    if step is not None:
        step = _number(step, "`step`")
        if step <= 0:
            raise Problem("MLW215", "`step` must be positive")
        if log:
            raise Problem("MLW215", "`step` and `log = true` cannot be combined")
    if low > high:
        raise Problem("MLW215", f"the low bound {to_text(low)} is above the high bound {to_text(high)}",
                      f"swap them: {call.func}({to_text(high)}, {to_text(low)})")
    if log and low <= 0:
        raise Problem("MLW215", f"a log scale needs a low bound above 0, got {to_text(low)}")
    return SearchDim(name=a.name, kind=call.func, low=low, high=high, log=log, step=step)


def _objective(a: RAttr) -> Objective:
    call = a.value
    if not isinstance(call, CallValue) or call.func not in ("maximize", "minimize"):
        raise Problem("MLW204", "write `objective = maximize(METRIC)` or `minimize(METRIC)`")
    if len(call.args) != 1 or call.args[0].name is not None or not isinstance(call.args[0].value, str):
        raise Problem("MLW204", f"{call.func}() takes one metric name, e.g. {call.func}(accuracy)")
    metric = call.args[0].value
    if metric.startswith("train_"):
        # A study that optimizes the score on the data it trained on rewards overfitting.
        held_out = metric.removeprefix("train_")
        raise Problem("MLW215", f"`{metric}` is a training-set score; a study must not optimize it",
                      f"use the held-out `{held_out}` or the cross-validated `cv_{held_out}`")
    return Objective(direction=call.func, metric=metric)


def _choice(options: tuple[str, ...], what: str):
    def check(a: RAttr) -> str:
        if not isinstance(a.value, str):
            raise Problem("MLW204", f"expected one of {', '.join(options)}")
        if a.value not in options:
            raise Problem("MLW215", f"unknown {what} `{a.value}`", did_you_mean(a.value, options) or f"{what}s: {', '.join(options)}")
        return a.value
    return check


_FIELD_CHECKS = {
    "objective": _objective,
    "trials": lambda a: integer(1)(a.value),
    "parallel": lambda a: integer(1)(a.value),
    "seed": lambda a: integer(0)(a.value),
    "timeout": lambda a: quantity("duration")(a.value),
    "sampler": _choice(SAMPLERS, "sampler"),
    "pruner": _choice(PRUNERS, "pruner"),
}
