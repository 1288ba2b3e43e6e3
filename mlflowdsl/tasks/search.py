"""Search spaces, samplers, pruners and objective directions, shared by every tuning path.

The ``tune`` block (``ir.Tuning``), the Python API's ``hyperparameter_config`` and task types
that run a study of their own (``hyperparameter_tuning``) all build their spaces, samplers and
pruners here, so a space means the same thing everywhere. Optuna is imported inside the functions that
need it: compiling a plan must not pay for it.

>>> dims = dims_from_dict({"n": {"type": "integer", "min": 10, "max": 100}})
>>> dims[0].kind, dims[0].low, dims[0].high
('int', 10.0, 100.0)
>>> grid_space([SearchDim(name="d", kind="int", low=1, high=3)])
{'d': [1, 2, 3]}
>>> direction_of("rmse"), direction_of("cv_accuracy")
('minimize', 'maximize')
"""

from __future__ import annotations

from typing import Any

from mlflowdsl.errors import MlwError
from mlflowdsl.ir import SearchDim

# Metrics that are better when lower: tuning minimizes them by default.
LOSS_METRICS = frozenset({"log_loss", "rmse", "mae"})


class TuningError(MlwError):
    """A tuning request or study that cannot run (bad space, objective, missing metric)."""


def direction_of(metric: str) -> str:
    """``minimize`` for losses, ``maximize`` otherwise (``train_``/``cv_`` prefixes ignored)."""
    base = metric.removeprefix("train_").removeprefix("cv_")
    return "minimize" if base in LOSS_METRICS else "maximize"


# ``type`` of a dimension in the JSON form -> ``SearchDim.kind``
SPACE_TYPES = {"integer": "int", "int": "int", "float": "float", "categorical": "choice", "choice": "choice"}


def dims_from_dict(space: dict[str, Any]) -> list[SearchDim]:
    """A search space in its JSON form (``hyperparameter_config["search_space"]``),
    ``{"n": {"type": "integer", "min": 10, "max": 100}}``, as dimensions, checked like a
    ``tune`` block (min <= max, non-empty choices, log needs min > 0)."""
    if not isinstance(space, dict) or not space:
        raise TuningError("search_space must be a non-empty object of name -> dimension",
                          hint='e.g. {"n_estimators": {"type": "integer", "min": 10, "max": 100}}')
    dims = []
    for name in sorted(space):
        spec = space[name]
        where = f"search_space.{name}"
        if not isinstance(spec, dict):
            raise TuningError(f"{where}: expected an object with 'type', got {spec!r}")
        kind = SPACE_TYPES.get(str(spec.get("type", "")))
        if kind is None:
            raise TuningError(f"{where}: unknown type {spec.get('type')!r}",
                              hint="types: integer, float, categorical")
        if kind == "choice":
            choices = spec.get("choices") or spec.get("values")
            if not choices:
                raise TuningError(f"{where}: a categorical dimension needs a non-empty 'choices' list")
            dims.append(SearchDim(name=name, kind="choice", choices=list(choices)))
            continue
        low, high = spec.get("min", spec.get("low")), spec.get("max", spec.get("high"))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise TuningError(f"{where}: needs numeric 'min' and 'max'")
        if low > high:
            raise TuningError(f"{where}: min ({low}) is greater than max ({high})", hint="swap them")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise TuningError(f"{where}: a log scale needs min > 0")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise TuningError(f"{where}: an integer dimension needs whole-number min and max")
        step = spec.get("step")
        if step is not None and (not isinstance(step, (int, float)) or step <= 0):
            raise TuningError(f"{where}: step must be a positive number")
        dims.append(SearchDim(name=name, kind=kind, low=float(low), high=float(high), log=log,
                              step=float(step) if step is not None else None))
    return dims


def suggest(trial: Any, dim: SearchDim) -> Any:
    """Ask ``trial`` for a value of ``dim`` (ints stay ints)."""
    if dim.kind == "choice":
        return trial.suggest_categorical(dim.name, list(dim.choices or []))
    if dim.kind == "int":
        step = int(dim.step) if dim.step and not dim.log else 1
        return trial.suggest_int(dim.name, int(dim.low), int(dim.high), step=step, log=dim.log)
    return trial.suggest_float(dim.name, float(dim.low), float(dim.high),
                               step=None if dim.log else dim.step, log=dim.log)


def distributions(dims: list[SearchDim]) -> dict[str, Any]:
    """Optuna distributions for ``study.ask(fixed_distributions)`` (ask-and-tell)."""
    from optuna import distributions as d  # noqa: PLC0415 - heavy: optuna only when a study runs

    out: dict[str, Any] = {}
    for dim in dims:
        if dim.kind == "choice":
            out[dim.name] = d.CategoricalDistribution(list(dim.choices or []))
        elif dim.kind == "int":
            step = int(dim.step) if dim.step and not dim.log else 1
            out[dim.name] = d.IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=step)
        else:
            out[dim.name] = d.FloatDistribution(float(dim.low), float(dim.high), log=dim.log,
                                                step=None if dim.log else dim.step)
    return out


def grid_space(dims: list[SearchDim]) -> dict[str, list[Any]]:
    """Every value of each dimension; floats need a ``step`` (the compiler says so)."""
    out: dict[str, list[Any]] = {}
    for dim in dims:
        if dim.kind == "choice":
            out[dim.name] = list(dim.choices or [])
        elif dim.kind == "int":
            out[dim.name] = list(range(int(dim.low), int(dim.high) + 1, int(dim.step or 1)))
        else:
            if not dim.step:
                raise TuningError(f"grid search needs a finite space: give `{dim.name}` a step",
                                  hint="or use choice(...)")
            n = int(round((dim.high - dim.low) / dim.step))
            out[dim.name] = [round(dim.low + i * dim.step, 12) for i in range(n + 1)]
    return out


def grid_size(dims: list[SearchDim]) -> int:
    size = 1
    for values in grid_space(dims).values():
        size *= len(values)
    return size


def make_sampler(kind: str, seed: int | None, dims: list[SearchDim]) -> Any:
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "cmaes":
        # CMA-ES handles numbers; categorical dimensions fall back to random sampling quietly
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid_space(dims), seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def startup_trials(trials: int) -> int:
    """Completed trials the median pruner waits for: Optuna's 5, fewer for small studies
    (with 8 trials, waiting for 5 would leave pruning almost nothing to do)."""
    return max(2, min(5, trials // 4))


def make_pruner(kind: str, trials: int, *, startup: int | None = None, warmup: int = 0) -> Any:
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials(trials) if startup is None else startup,
                                           n_warmup_steps=warmup)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()
