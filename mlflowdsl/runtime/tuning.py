"""Hyperparameter studies: a ``tune`` block's trials as Dask tasks, driven by ask-and-tell.

The executor hands a tuned task to a :class:`StudyDriver` instead of submitting it. The
driver runs in a thread of the client process: it asks Optuna for ``parallel`` trials,
submits each as a normal task execution (``worker.run_task``) of the tuned task with the
sampled values merged into its hyperparameters -- so every trial has its own cache key and a
repeated trial is a cache hit, not a retrain -- and tells the study each result. Workers
report intermediate values to the same study through its journal storage (a file under
``<home>/studies/`` or Optuna's journal on Redis), where the pruner decides. When the budget
is spent the best trial's future becomes the tuned task's output, so dependents receive the
best model.

The study is named by execution and task and opened with ``load_if_exists``: a run resumed
under the same execution id (``mlw run --resume``, a cluster failover) keeps the finished
trials; trials a dead driver left RUNNING are marked failed and retried once.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mlflowdsl.ir import Objective, Task, Tuning, key_part
from mlflowdsl.runtime.cache.base import cache_key
from mlflowdsl.runtime.tuning_space import (
    TuningError, distributions, grid_size, importances, make_pruner, make_sampler,
    open_storage, storage_descriptor, study_name,
)

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
        from mlflowdsl.tasks import get_task_type

        return "hyperparameters" in get_task_type(task.type).Params.model_fields
    except Exception:  # noqa: BLE001
        return False


def tuned_key_part(task: Task, tuning: Tuning) -> str:
    """The tuned task's key part: its own plus the tuning block (the best model of a study is
    not the model of the untuned task, so the two must not share a cache key)."""
    body = tuning.model_dump_json(exclude={"span"})
    return hashlib.sha256(f"{task.key_part}\0{body}".encode()).hexdigest()


def tuned_key_parts(plan: Any) -> Any:
    """``plan`` with each tuned task's ``key_part`` replaced by :func:`tuned_key_part`, for
    computing cache keys (a tuned task and its dependents get keys of their own)."""
    if not plan.tunings:
        return plan
    tunings = {t.task: t for t in plan.tunings}
    tasks = [t.model_copy(update={"key_part": tuned_key_part(t, tunings[t.id])}) if t.id in tunings else t
             for t in plan.tasks]
    return plan.model_copy(update={"tasks": tasks})


@dataclass
class StudyOutcome:
    ok: bool
    meta: dict[str, Any]  # the tuned task's result message (the best trial's, or the failure)
    best_future: Any = None
    summary: dict[str, Any] | None = None


@dataclass
class _InFlight:
    trial: Any
    number: int
    params: dict[str, Any]
    task: Task
    key: str


@dataclass
class StudyDriver:
    """Runs one study on ``client`` (see the module docstring). ``make_spec(task, key, trial)``
    builds the worker's ``TaskSpec``; ``submit(spec)`` submits it with the upstream futures."""

    tuning: Tuning
    task: Task
    execution_id: str
    settings: Any
    input_keys: list[str]
    data_fingerprints: list[str]
    make_spec: Callable[[Task, str, dict | None], Any]
    submit: Callable[[Any, str], Any]
    fetch_meta: Callable[[Any], dict]
    cancel: Callable[[list], None]
    spread_inputs: Callable[[], None] | None = None
    on_trial: Callable[[dict], None] | None = None
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
            self.outcome = self._failure(f"{type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    def _failure(self, error: str) -> StudyOutcome:
        return StudyOutcome(False, {"kind": "done", "task_id": self.task.id, "status": "failed", "error": error,
                                    "attempts": 1, "started": self.started, "ended": time.time()})

    # ------------------------------------------------------------------ the study

    def _run(self) -> StudyOutcome:
        import optuna
        from distributed import wait

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        tuning = self.tuning
        check_objective(tuning.objective)
        descriptor = storage_descriptor(self.settings, self.execution_id, self.task.id)
        name = study_name(self.execution_id, self.task.id)
        study = optuna.create_study(
            study_name=name, storage=open_storage(descriptor, name), load_if_exists=True,
            direction=tuning.objective.direction, sampler=make_sampler(tuning.sampler, tuning.seed, tuning.search),
            pruner=make_pruner(tuning.pruner, tuning.trials))
        _recover_stale(study)
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
        if tuning.parallel > 1 and self.spread_inputs is not None:
            self.spread_inputs()
        try:
            while True:
                if self._stop.is_set():
                    raise TuningError("the study was cancelled")
                timed_out = deadline is not None and time.monotonic() >= deadline
                while not timed_out and len(in_flight) < tuning.parallel and finished + len(in_flight) < budget:
                    trial = study.ask(dists)
                    job = self._job(trial)
                    # without pruning the worker need not open the study at all
                    spec = self.make_spec(job.task, job.key,
                                          {**trial_info, "trial_id": trial._trial_id} if prune else None)
                    future = self.submit(spec, f"{self.task.id}-t{trial.number}")
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
            self.cancel(list(in_flight))
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
        from optuna.trial import TrialState

        try:
            meta = self.fetch_meta(future)
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
                _tell_study(study, job.trial, state=TrialState.FAIL)
                available = ", ".join(sorted(m for m in record["metrics"] if not m.startswith("train_"))) or "none"
                raise TuningError(f"task {self.task.id!r} reports no metric {metric!r} to optimize",
                                  hint=f"its held-out metrics: {available}")
            self.cache_hits += status == "cached"
            self.trainings += status == "succeeded"
            _set_attrs(study, job.trial, {**record, "state": "complete"})
            if isinstance(value, float) and math.isnan(value):
                _tell_study(study, job.trial, state=TrialState.FAIL)
                record["state"] = "fail"
            else:
                _tell_study(study, job.trial, value)
                record.update(state="complete", value=value)
        else:
            errors = meta.get("attempt_errors") or []
            pruned = bool(errors) and errors[-1].get("type") == "TaskPruned"
            record["error"] = meta.get("error")
            self.trainings += 1 if status == "failed" else 0
            _set_attrs(study, job.trial, record)
            if pruned:
                _tell_study(study, job.trial, state=TrialState.PRUNED)
                record["state"] = "pruned"
            else:
                _tell_study(study, job.trial, state=TrialState.FAIL)
                record["state"] = "fail"
                if status == "lost" and not job.trial.user_attrs.get("retry_of"):
                    study.enqueue_trial(job.params, user_attrs={"retry_of": job.number})
                    study._storage.set_trial_user_attr(job.trial._trial_id, "stale", True)
                    counted = False
        if self.on_trial:
            self.on_trial({k: v for k, v in record.items() if k != "metrics"})
        return counted

    def _conclude(self, study: Any, futures: dict[int, Any], trial_info: dict) -> StudyOutcome:
        from optuna.trial import TrialState

        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        summary = summarize(study, self.tuning, trainings=self.trainings, cache_hits=self.cache_hits)
        if not complete:
            errors = [t["error"] for t in summary["trials"] if t.get("error")]
            self.cancel(list(futures.values()))
            raise TuningError(f"no trial of the study succeeded ({len(summary['trials'])} tried)"
                              + (f"; first error: {errors[0]}" if errors else ""),
                              hint="check the search space and the task's fixed hyperparameters")
        best = study.best_trial
        future = futures.pop(best.number, None)
        if future is None:  # finished before a restart: its output is in the cache, or it is retrained
            job = self._job_for(best.params)
            future = self.submit(self.make_spec(job.task, job.key, None), f"{self.task.id}-best")
            meta = self.fetch_meta(future)
            if meta.get("status") not in ("succeeded", "cached"):
                raise TuningError(f"the best trial ({best.number}) could not be reproduced: {meta.get('error')}")
            if meta.get("status") == "succeeded":
                summary["trainings"] += 1
        else:
            meta = {**best.user_attrs}
        self.cancel(list(futures.values()))  # the other trials' outputs are no longer needed
        metrics = dict(meta.get("metrics") or best.user_attrs.get("metrics") or {})
        result = {"kind": "done", "task_id": self.task.id, "status": "succeeded", "attempts": 1,
                  "started": self.started, "ended": time.time(), "metrics": metrics,
                  "artifacts": {}, "cached": False, "error": None, "worker": meta.get("worker"),
                  "study": summary}
        return StudyOutcome(True, result, future, summary)

    def _job_for(self, params: dict[str, Any]) -> _InFlight:
        values = {d.name: params[d.name] for d in self.tuning.search if d.name in params}
        trial_task = merge_values(self.task, values)
        return _InFlight(None, -1, values, trial_task,
                         cache_key(trial_task.key_part, self.input_keys, self.data_fingerprints))


def _tell_study(study: Any, trial: Any, value: float | None = None, state: Any = None) -> None:
    """``study.tell``; the grid sampler calls ``study.stop()`` after the last point, which
    Optuna refuses outside ``optimize`` -- the result is stored first, and the budget here is
    capped at the grid's size anyway."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _set_attrs(study: Any, trial: Any, record: dict[str, Any]) -> None:
    """Keep what the summary and a resumed driver need with the trial in the journal."""
    for key in ("metrics", "cache_key", "cached", "started", "ended", "worker", "error"):
        if record.get(key) is not None:
            study._storage.set_trial_user_attr(trial._trial_id, key, record[key])


def _recover_stale(study: Any) -> None:
    """Trials left RUNNING by a driver that died: failed, and each enqueued again once."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "stale", True)
        study._storage.set_trial_user_attr(t._trial_id, "error", "its driver stopped (interrupted run)")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if not t.user_attrs.get("retry_of") and t.params:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})


def summarize(study: Any, tuning: Tuning, *, trainings: int = 0, cache_hits: int = 0) -> dict[str, Any]:
    """Best value and params, counts, importances and the trials table, as plain data."""
    from optuna.trial import TrialState

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


# ------------------------------------------------------------------------- executor glue

def start_study(run: Any, tid: str) -> StudyDriver:
    """Start the study of tuned task ``tid`` within an executor ``_Run`` (its futures, keys,
    settings and message queue)."""
    from mlflowdsl.runtime import resources as res
    from mlflowdsl.runtime.executor import ref
    from mlflowdsl.runtime.keys import data_fingerprints
    from mlflowdsl.runtime.worker import TaskSpec, meta_of, run_task

    task = run.by_id[tid]
    upstream = tuple(task.dependencies)
    client = run.client
    resources = res.requirements(task, run.declared) or None
    topic = f"{run.topic}-study-{tid}"  # trial messages must not end the tuned task's record

    def make_spec(trial_task: Task, key: str, trial: dict | None) -> TaskSpec:
        return TaskSpec(execution_id=run.execution.id, task=trial_task, cache_key=key, upstream_ids=upstream,
                        settings=run.ex.settings, base_dir=run.options.base_dir, topic=topic, trial=trial,
                        plan_fingerprint=run.plan.fingerprint)

    def submit(spec: TaskSpec, label: str) -> Any:
        token = hashlib.md5(f"{run.execution.id}/{run.run_no}/{label}".encode()).hexdigest()
        return client.submit(run_task, spec, *[ref(run.outputs[u]) for u in upstream], key=f"mlw_{task.type}-{token}",
                             pure=False, resources=resources)

    def fetch_meta(future: Any) -> dict:
        if future.status in ("error", "cancelled"):  # Dask lost it (e.g. its worker died too often)
            raise future.exception() or RuntimeError(f"trial task {future.status}")
        return client.submit(meta_of, ref(future), pure=False).result()

    def spread_inputs() -> None:
        """Copy the trials' inputs to every worker: Dask places a task where its inputs are,
        so with the data on one worker parallel trials would queue there one after another."""
        inputs = [run.outputs[u] for u in upstream]
        if not inputs:
            return
        try:
            from distributed import wait

            wait(inputs)
            client.replicate(inputs)
        except Exception:  # noqa: BLE001 - only a placement hint; the trials run anyway
            pass

    def cancel(futures: list) -> None:
        if futures:
            try:
                client.cancel(futures)
            except Exception:  # noqa: BLE001 - the cluster may be gone
                pass

    return StudyDriver(
        tuning=run.tunings[tid], task=task, execution_id=run.execution.id, settings=run.ex.settings,
        input_keys=[run.decision.keys[d] for d in task.dependencies],
        data_fingerprints=data_fingerprints(task, run.options.base_dir),
        make_spec=make_spec, submit=submit, fetch_meta=fetch_meta, cancel=cancel, spread_inputs=spread_inputs,
        on_trial=lambda r: run._emit("tuning.trial_completed", {  # one event per finished trial
            "task_id": tid, "trial": r["number"], "state": r.get("state"), "value": r.get("value"),
            "params": r.get("params") or {}, "cached": r.get("cached"), "error": r.get("error")}),
    ).start()


def failed_envelope(task_id: str, error: str | None) -> Any:
    """The output of a tuned task whose study failed: its dependents see a failed upstream."""
    from mlflowdsl.runtime.worker import Envelope

    return Envelope(task_id, False, meta={"status": "failed", "error": error})
