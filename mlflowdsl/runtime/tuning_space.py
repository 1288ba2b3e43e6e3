"""Search spaces, samplers, pruners and study storage shared by every tuning path.

The ``tune`` block (``ir.Tuning``), the seed's ``hyperparameter_config`` and the
``hyperparameter_tuning`` task all go through these functions, so a space means the same
thing everywhere. Optuna is imported lazily: compiling a plan must not pay for it.

>>> dims = dims_from_seed({"n": {"type": "integer", "min": 10, "max": 100}})
>>> dims[0].kind, dims[0].low, dims[0].high
('int', 10.0, 100.0)
>>> grid_space([SearchDim(name="d", kind="int", low=1, high=3)])
{'d': [1, 2, 3]}
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from mlflowdsl.errors import MlwError
from mlflowdsl.ir import SearchDim

SEED_KINDS = {"integer": "int", "int": "int", "float": "float", "categorical": "choice", "choice": "choice"}


class TuningError(MlwError):
    """A tuning request or study that cannot run (bad space, objective, missing metric)."""


def dims_from_seed(space: dict[str, Any]) -> list[SearchDim]:
    """The seed's form ``{"n": {"type": "integer", "min": 10, "max": 100}}`` as dimensions,
    checked like a ``tune`` block (min <= max, non-empty choices, log needs min > 0)."""
    if not isinstance(space, dict) or not space:
        raise TuningError("search_space must be a non-empty object of name -> dimension",
                          hint='e.g. {"n_estimators": {"type": "integer", "min": 10, "max": 100}}')
    dims = []
    for name in sorted(space):
        spec = space[name]
        where = f"search_space.{name}"
        if not isinstance(spec, dict):
            raise TuningError(f"{where}: expected an object with 'type', got {spec!r}")
        kind = SEED_KINDS.get(str(spec.get("type", "")))
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
    from optuna import distributions as d

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
    import optuna

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
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials(trials) if startup is None else startup,
                                           n_warmup_steps=warmup)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


# ------------------------------------------------------------------------- storage

def storage_descriptor(settings: Any, execution_id: str, task_id: str) -> dict[str, str]:
    """Where a study lives, as plain data a worker can receive: Optuna's journal on Redis
    when the settings name one (cluster mode: any instance can resume it), else a journal
    file under ``<home>/studies/``."""
    if getattr(settings, "redis_url", None):
        return {"kind": "redis", "url": settings.redis_url}
    directory = os.path.join(os.path.abspath(str(settings.home)), "studies")
    os.makedirs(directory, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{execution_id}-{task_id}")
    return {"kind": "file", "path": os.path.join(directory, f"{safe}.journal")}


_storages: "OrderedDict[tuple, Any]" = OrderedDict()
_storages_lock = threading.Lock()
_KEEP_STORAGES = 16  # long-lived workers see many studies; each keeps its replayed journal


def open_storage(descriptor: dict[str, str], study: str = "") -> Any:
    """A journal storage for ``descriptor``, reused per process and study (Optuna replays the
    journal incrementally, so reusing the object keeps reports cheap). Keyed by study too: a
    storage whose backend was reset underneath it (a flushed Redis) cannot replay again, and a
    new execution is a new study, so it starts from a fresh object."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    ident = (descriptor["kind"], descriptor.get("url") or descriptor.get("path"), study, os.getpid())
    with _storages_lock:
        if ident in _storages:
            _storages.move_to_end(ident)
            return _storages[ident]
        if descriptor["kind"] == "redis":
            backend = JournalRedisBackend(descriptor["url"], prefix="mlw-optuna:")
        else:
            backend = JournalFileBackend(descriptor["path"])
        _storages[ident] = storage = optuna.storages.JournalStorage(backend)
        while len(_storages) > _KEEP_STORAGES:
            _storages.popitem(last=False)
        return storage


def study_name(execution_id: str, task_id: str) -> str:
    return f"mlw:{execution_id}:{task_id}"


def trial_reporter(info: dict[str, Any]):
    """``ctx.report`` for a trial running on a worker: record the intermediate value in the
    study's storage and ask the study's pruner whether to stop (what ``Trial.should_prune``
    does, without building a ``Trial``, which would need the sampler)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(info["storage"], info["study"])
    study = optuna.load_study(study_name=info["study"], storage=storage,
                              pruner=make_pruner(info["pruner"], int(info["trials"])))
    trial_id = int(info["trial_id"])

    def report(step: int, value: float) -> bool:
        if not info.get("prune", True):
            return False
        storage.set_trial_intermediate_value(trial_id, int(step), float(value))
        return bool(study.pruner.prune(study, storage.get_trial(trial_id)))

    return report


def importances(study: Any) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) when at least two trials completed and the
    values vary; empty otherwise (it raises on degenerate studies)."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    try:
        return {k: round(float(v), 6) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:  # noqa: BLE001 - importances are a nicety, never a failure
        return {}
