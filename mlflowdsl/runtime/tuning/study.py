"""An Optuna study's records as the driver keeps them: telling results, the attributes a
trial carries in the journal (for the summary and for a driver that resumes the study),
recovering trials a dead driver left running, and the summary a tuned task's record shows.

These use two of Optuna's private attributes, ``study._storage`` and ``trial._trial_id``, to
write a trial's attributes and state by id.
"""

from __future__ import annotations

from typing import Any

from mlflowdsl.ir import Tuning
from mlflowdsl.runtime.tuning.storage import importances


def tell(study: Any, trial: Any, value: float | None = None, state: Any = None) -> None:
    """``study.tell``; the grid sampler calls ``study.stop()`` after the last point, which
    Optuna refuses outside ``optimize`` -- the result is stored first, and the budget here is
    capped at the grid's size anyway."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def trial_id(trial: Any) -> int:
    """The trial's id in the study's storage (what a worker's pruning reporter writes to)."""
    return trial._trial_id


def mark_stale(study: Any, trial: Any) -> None:
    """The trial does not count against the budget (it is retried under a new number)."""
    study._storage.set_trial_user_attr(trial._trial_id, "stale", True)


def set_attrs(study: Any, trial: Any, record: dict[str, Any]) -> None:
    """Keep what the summary and a resumed driver need with the trial in the journal."""
    for key in ("metrics", "cache_key", "cached", "started", "ended", "worker", "error"):
        if record.get(key) is not None:
            study._storage.set_trial_user_attr(trial._trial_id, key, record[key])


def recover_stale(study: Any) -> None:
    """Trials left RUNNING by a driver that died: failed, and each enqueued again once."""
    from optuna.trial import TrialState  # noqa: PLC0415 - heavy: optuna only when a study runs

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mark_stale(study, t)
        study._storage.set_trial_user_attr(t._trial_id, "error", "its driver stopped (interrupted run)")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if not t.user_attrs.get("retry_of") and t.params:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})


def summarize(study: Any, tuning: Tuning, *, trainings: int = 0, cache_hits: int = 0) -> dict[str, Any]:
    """Best value and params, counts, importances and the trials table, as plain data."""
    from optuna.trial import TrialState  # noqa: PLC0415 - heavy: optuna only when a study runs

    rows = []
    for t in study.trials:
        a = t.user_attrs
        started, ended = a.get("started"), a.get("ended")
        # A pruned trial's Optuna value is its last intermediate value -- the task's primary
        # metric at that step, not the objective: kept apart so tables do not mix the two.
        complete_value = t.value if t.state == TrialState.COMPLETE else None
        row = {"number": t.number, "state": t.state.name.lower(), "value": complete_value, "params": dict(t.params),
               "cached": bool(a.get("cached")), "started": started, "ended": ended,
               "duration_s": (ended - started) if started and ended else None, "worker": a.get("worker")}
        if a.get("error"):
            row["error"] = a["error"]
        if t.intermediate_values:
            row["last_step"] = max(t.intermediate_values)
            row["last_reported"] = t.intermediate_values[row["last_step"]]
        if a.get("stale"):
            row["stale"] = True
        rows.append(row)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return {
        "study": study.study_name, "metric": tuning.objective.metric, "direction": tuning.objective.direction,
        "sampler": tuning.sampler, "pruner": tuning.pruner, "parallel": tuning.parallel, "budget": tuning.trials,
        "best_value": best.value if best else None, "best_params": dict(best.params) if best else {},
        "best_trial": best.number if best else None, "counts": counts, "trainings": trainings,
        "cache_hits": cache_hits, "importances": importances(study), "trials": rows,
    }
