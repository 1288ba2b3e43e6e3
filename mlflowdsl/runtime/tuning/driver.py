"""The study driver: one ``tune`` block's trials as Dask tasks, driven by ask-and-tell.

The run hands a tuned task to a :class:`StudyDriver` instead of submitting it. The driver runs
in a thread of the client process: it asks Optuna for ``parallel`` trials, has the run's
:class:`~mlflowdsl.runtime.tuning.host.StudyHost` submit each as a normal task execution
(``worker.run_task``) of the tuned task with the sampled values merged into its
hyperparameters -- so every trial has its own cache key and a repeated trial is a cache hit,
not a retrain -- and tells the study each result. Workers report intermediate values to the
same study through its journal storage (a file under ``<home>/studies/`` or Optuna's journal on
Redis), where the pruner decides. When the budget is spent the best trial's future becomes the
tuned task's output, so dependents receive the best model.

The study is named by execution and task and opened with ``load_if_exists``: a run resumed
under the same execution id (``mlw run --resume``, a cluster failover) keeps the finished
trials; trials a dead driver left RUNNING are marked failed and retried once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mlflowdsl.ir import Objective, Task, Tuning, key_part
from mlflowdsl.runtime.cache.base import cache_key
from mlflowdsl.runtime.tuning.host import StudyHost
from mlflowdsl.runtime.tuning.study import mark_stale, recover_stale, set_attrs, summarize, tell, trial_id
from mlflowdsl.runtime.tuning.storage import open_storage, storage_descriptor, study_name
from mlflowdsl.tasks import get_task_type
from mlflowdsl.tasks.search import TuningError, distributions, grid_size, make_pruner, make_sampler

log = logging.getLogger(__name__)

# Tasks whose trainer reports its primary held-out metric (accuracy / r2: higher is better)
# to ``ctx.report``; pruning them only makes sense when the study maximizes.
_REPORTS_PRIMARY = {"model_training"}
_POLL_S = 0.2


def check_objective(objective: Objective) -> None:
    """The training score measures fit, not generalization: never optimize it."""
    if objective.metric.startswith("train_"):
        raise TuningError(f"objective metric {objective.metric!r} is a training-set score",
                          hint=f"optimize a held-out or cross-validated metric, e.g. "
                               f"{objective.metric.removeprefix('train_')} or cv_{objective.metric.removeprefix('train_')}")


def merge_values(task: Task, values: dict[str, Any]) -> Task:
    """``task`` with sampled ``values`` merged into its hyperparameters (or its top-level
    params for task types without a ``hyperparameters`` parameter) and its static key part
    recomputed, so the trial's cache key is that of the same task written with these values.

    >>> t = Task(id="t", type="model_training", params={"hyperparameters": {"a": 1, "b": 2}})
    >>> merge_values(t, {"b": 3}).params["hyperparameters"]
    {'a': 1, 'b': 3}
    """
    params = dict(task.params)
    if _has_hyperparameters(task):
        params["hyperparameters"] = {**dict(params.get("hyperparameters") or {}), **values}
    else:
        params.update(values)
    return task.model_copy(update={"params": params, "key_part": key_part(
        task.type, task.impl_version, task.uses, params, task.cache.version)})


def _has_hyperparameters(task: Task) -> bool:
    if "hyperparameters" in task.params:
        return True
    if task.type == "custom":
        return False
    try:
        return "hyperparameters" in get_task_type(task.type).Params.model_fields
    except Exception as exc:  # noqa: BLE001 - a type that cannot tell: its top-level params are tuned
        log.debug("task type %s: hyperparameters not found (%s)", task.type, exc)
        return False


@dataclass
class StudyOutcome:
    ok: bool
    meta: dict[str, Any]  # the tuned task's result message (the best trial's, or the failure)
    best_future: Any = None


@dataclass
class _InFlight:
    trial: Any
    number: int
    params: dict[str, Any]
    task: Task
    key: str


@dataclass
class StudyDriver:
    """Runs the study of one tuned task in a thread of its own (see the package docstring),
    submitting trials through ``host``. ``input_keys`` and ``data_fingerprints`` are those of
    the tuned task: with a trial's values they make the trial's cache key."""

    tuning: Tuning
    task: Task
    execution_id: str
    settings: Any
    input_keys: list[str]
    data_fingerprints: list[str]
    host: StudyHost
    outcome: StudyOutcome | None = None
    started: float = field(default_factory=time.time)
    _stop: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ control

    def start(self) -> "StudyDriver":
        threading.Thread(target=self._run_safely, name=f"mlw-study-{self.task.id}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _run_safely(self) -> None:
        try:
            self.outcome = self._run()
        except TuningError as exc:
            self.outcome = self._failure(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported as the tuned task's failure
            log.debug("study of task %s failed", self.task.id, exc_info=True)
            self.outcome = self._failure(f"{type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    def _failure(self, error: str) -> StudyOutcome:
        return StudyOutcome(False, {"kind": "done", "task_id": self.task.id, "status": "failed", "error": error,
                                    "attempts": 1, "started": self.started, "ended": time.time()})

    # ------------------------------------------------------------------ the study

    def _run(self) -> StudyOutcome:
        import optuna  # noqa: PLC0415 - heavy: optuna only when a study runs
        from distributed import wait  # noqa: PLC0415 - heavy: distributed only when a study runs

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        tuning = self.tuning
        check_objective(tuning.objective)
        descriptor = storage_descriptor(self.settings, self.execution_id, self.task.id)
        name = study_name(self.execution_id, self.task.id)
        study = optuna.create_study(
            study_name=name, storage=open_storage(descriptor, name), load_if_exists=True,
            direction=tuning.objective.direction, sampler=make_sampler(tuning.sampler, tuning.seed, tuning.search),
            pruner=make_pruner(tuning.pruner, tuning.trials))
        recover_stale(study)
        budget = min(tuning.trials, grid_size(tuning.search)) if tuning.sampler == "grid" else tuning.trials
        finished = sum(1 for t in study.trials if t.state.is_finished() and not t.user_attrs.get("stale"))
        dists = distributions(tuning.search)
        prune = tuning.pruner != "none" and (self.task.type not in _REPORTS_PRIMARY
                                             or tuning.objective.direction == "maximize")
        trial_info = {"storage": descriptor, "study": name, "pruner": tuning.pruner, "trials": tuning.trials,
                      "prune": prune}
        deadline = time.monotonic() + tuning.timeout if tuning.timeout else None
        in_flight: dict[Any, _InFlight] = {}
        futures_by_number: dict[int, Any] = {}
        self.trainings = self.cache_hits = 0
        if tuning.parallel > 1:
            self.host.spread_inputs()
        try:
            while True:
                if self._stop.is_set():
                    raise TuningError("the study was cancelled")
                timed_out = deadline is not None and time.monotonic() >= deadline
                while not timed_out and len(in_flight) < tuning.parallel and finished + len(in_flight) < budget:
                    trial = study.ask(dists)
                    job = self._job(trial)
                    # without pruning the worker need not open the study at all
                    spec = self.host.make_spec(job.task, job.key,
                                               {**trial_info, "trial_id": trial_id(trial)} if prune else None)
                    future = self.host.submit(spec, f"{self.task.id}-t{trial.number}")
                    in_flight[future] = job
                    futures_by_number[job.number] = future
                if not in_flight:
                    break
                try:
                    done, _ = wait(list(in_flight), timeout=_POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:  # distributed's wait raises when nothing finished in time
                    continue
                for future in done:
                    job = in_flight.pop(future)
                    keep = self._tell(study, future, job)
                    finished += 1 if keep else 0
                    if not keep:
                        futures_by_number.pop(job.number, None)
        except BaseException:
            self.host.cancel(list(in_flight))
            raise
        return self._conclude(study, futures_by_number, trial_info)

    def _job(self, trial: Any) -> _InFlight:
        params = {d.name: trial.params[d.name] for d in self.tuning.search}
        trial_task = merge_values(self.task, params)
        key = cache_key(trial_task.key_part, self.input_keys, self.data_fingerprints)
        return _InFlight(trial, trial.number, params, trial_task, key)

    def _tell(self, study: Any, future: Any, job: _InFlight) -> bool:
        """Record one finished trial; False when it does not count against the budget (a
        trial whose worker died: it is enqueued again, once)."""
        from optuna.trial import TrialState  # noqa: PLC0415 - heavy: optuna only when a study runs

        try:
            meta = self.host.fetch_meta(future)
        except Exception as exc:  # noqa: BLE001 - the worker died or the task was lost
            meta = {"status": "lost", "error": f"{type(exc).__name__}: {exc}"}
        record = {"number": job.number, "params": job.params, "cache_key": job.key,
                  "cached": bool(meta.get("cached")), "started": meta.get("started"), "ended": meta.get("ended"),
                  "worker": meta.get("worker"), "metrics": meta.get("metrics") or {}}
        status, metric = meta.get("status"), self.tuning.objective.metric
        counted = True
        if status in ("succeeded", "cached"):
            value = record["metrics"].get(metric)
            if value is None:
                tell(study, job.trial, state=TrialState.FAIL)
                available = ", ".join(sorted(m for m in record["metrics"] if not m.startswith("train_"))) or "none"
                raise TuningError(f"task {self.task.id!r} reports no metric {metric!r} to optimize",
                                  hint=f"its held-out metrics: {available}")
            self.cache_hits += status == "cached"
            self.trainings += status == "succeeded"
            set_attrs(study, job.trial, {**record, "state": "complete"})
            if isinstance(value, float) and math.isnan(value):
                tell(study, job.trial, state=TrialState.FAIL)
                record["state"] = "fail"
            else:
                tell(study, job.trial, value)
                record.update(state="complete", value=value)
        else:
            errors = meta.get("attempt_errors") or []
            pruned = bool(errors) and errors[-1].get("type") == "TaskPruned"
            record["error"] = meta.get("error")
            self.trainings += 1 if status == "failed" else 0
            set_attrs(study, job.trial, record)
            if pruned:
                tell(study, job.trial, state=TrialState.PRUNED)
                record["state"] = "pruned"
            else:
                tell(study, job.trial, state=TrialState.FAIL)
                record["state"] = "fail"
                if status == "lost" and not job.trial.user_attrs.get("retry_of"):
                    study.enqueue_trial(job.params, user_attrs={"retry_of": job.number})
                    mark_stale(study, job.trial)
                    counted = False
        self.host.on_trial({k: v for k, v in record.items() if k != "metrics"})
        return counted

    def _conclude(self, study: Any, futures: dict[int, Any], trial_info: dict) -> StudyOutcome:
        from optuna.trial import TrialState  # noqa: PLC0415 - heavy: optuna only when a study runs

        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        summary = summarize(study, self.tuning, trainings=self.trainings, cache_hits=self.cache_hits)
        if not complete:
            errors = [t["error"] for t in summary["trials"] if t.get("error")]
            self.host.cancel(list(futures.values()))
            raise TuningError(f"no trial of the study succeeded ({len(summary['trials'])} tried)"
                              + (f"; first error: {errors[0]}" if errors else ""),
                              hint="check the search space and the task's fixed hyperparameters")
        best = study.best_trial
        job = self._job_for(best.params)
        summary["best_cache_key"] = job.key  # where the best trial's outputs (its model) are cached
        future = futures.pop(best.number, None)
        if future is None:  # finished before a restart: its output is in the cache, or it is retrained
            future = self.host.submit(self.host.make_spec(job.task, job.key, None), f"{self.task.id}-best")
            meta = self.host.fetch_meta(future)
            if meta.get("status") not in ("succeeded", "cached"):
                raise TuningError(f"the best trial ({best.number}) could not be reproduced: {meta.get('error')}")
            if meta.get("status") == "succeeded":
                summary["trainings"] += 1
        else:
            meta = {**best.user_attrs}
        self.host.cancel(list(futures.values()))  # the other trials' outputs are no longer needed
        metrics = dict(meta.get("metrics") or best.user_attrs.get("metrics") or {})
        result = {"kind": "done", "task_id": self.task.id, "status": "succeeded", "attempts": 1,
                  "started": self.started, "ended": time.time(), "metrics": metrics,
                  "artifacts": {}, "cached": False, "error": None, "worker": meta.get("worker"),
                  "study": summary}
        return StudyOutcome(True, result, future)

    def _job_for(self, params: dict[str, Any]) -> _InFlight:
        values = {d.name: params[d.name] for d in self.tuning.search if d.name in params}
        trial_task = merge_values(self.task, values)
        return _InFlight(None, -1, values, trial_task,
                         cache_key(trial_task.key_part, self.input_keys, self.data_fingerprints))
