"""Where tuning studies live: journal storage on a file or Redis, reused per process; the
pruning reporter a trial's worker uses; parameter importances.

Spaces, samplers and pruners are in :mod:`mlflowdsl.tasks.search` (shared with task types).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any

from mlflowdsl.tasks.search import make_pruner

log = logging.getLogger(__name__)


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
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend  # noqa: PLC0415 - heavy: optuna

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
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs

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
    import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    try:
        return {k: round(float(v), 6) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception as exc:  # noqa: BLE001 - importances are a nicety, never a failure
        log.debug("no parameter importances for study %s: %s", study.study_name, exc)
        return {}
