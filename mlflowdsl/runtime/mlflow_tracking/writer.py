"""Writes one execution to an MLflow tracking server: a parent run, a nested run per task, a
child run per tuning trial, trained models in the sklearn flavour.

:class:`ExecutionWriter` does the MLflow calls for one execution and keeps what it logged, so
that a second pass (``mlw mlflow sync``, a resumed execution) logs only what is missing: it
finds the parent run by its ``mlw.execution_id`` tag and the task runs under it. The first
failed call opens a breaker: nothing more is sent, what was not logged is counted, and
:meth:`ExecutionWriter.summary` says so (the caller warns once).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

from mlflowdsl.ir import Plan
from mlflowdsl.runtime.mlflow_tracking import mapping as m
from mlflowdsl.runtime.mlflow_tracking.models import save_mlflow_model, trained_models
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution

log = logging.getLogger(__name__)

BATCH_PARAMS, BATCH_TAGS, BATCH_METRICS = 100, 100, 1000  # MLflow's log_batch limits
# An unreachable server must cost seconds, not minutes: MLflow retries 7 times with backoff by
# default. The user's own values win.
HTTP_DEFAULTS = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # a run's end prints its URL otherwise
                 "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}

ReportRenderer = Callable[[WorkflowExecution], str]


@dataclass(frozen=True)
class Summary:
    uri: str
    experiment: str
    parent_run_id: str | None
    logged: int  # runs written (parent, tasks, trials) and models
    not_logged: int
    error: str | None

    def warning(self, execution_id: str) -> str | None:
        if not self.error:
            return None
        return (f"MLflow tracking at {self.uri} failed ({self.error}); {self.not_logged} run(s)/model(s) of "
                f"execution {execution_id} not logged. The workflow itself is not affected; "
                f"replay with `mlw mlflow sync {execution_id}` once the server answers")


def mlflow_client(uri: str) -> Any:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy: mlflow only when tracking is on

    return MlflowClient(tracking_uri=uri)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


class ExecutionWriter:
    def __init__(self, uri: str, experiment: str, plan: Plan, *, settings: Any, base_dir: str,
                 log_models: bool = True, report: ReportRenderer | None = None):
        self.uri = uri
        self.experiment = experiment
        self.plan = plan
        self.by_id = plan.tasks_by_id()
        self.settings = settings
        self.base_dir = base_dir
        self.log_models = log_models
        self.report = report
        self.client: Any = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.task_runs: dict[str, str] = {}  # task id -> run id (logged now or found)
        self.seen: set[str] = set()  # task ids handled by this writer, logged or not
        self.logged = 0
        self.not_logged = 0
        self.error: str | None = None

    # ------------------------------------------------------------------ guarded calls

    def _guard(self, what: str, fn: Callable[[], Any], *, count: int = 1) -> Any:
        """Run ``fn`` unless the breaker is open; a failure opens it. Returns None when not run."""
        if self.error is not None:
            self.not_logged += count
            return None
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - any failure of the tracking server is reported, never raised
            self.error = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
            self.not_logged += count
            return None
        self.logged += count
        return out

    def _log_batch(self, run_id: str, *, params: dict[str, str] | None = None, tags: dict[str, str] | None = None,
                   metrics: dict[str, float] | None = None, history: list[tuple[str, int, float]] = (),
                   at: int | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag  # noqa: PLC0415 - heavy: mlflow only when tracking is on

        now = at or int(time.time() * 1000)
        p = [Param(k, v) for k, v in (params or {}).items()]
        t = [RunTag(k, v) for k, v in (tags or {}).items()]
        ms = [Metric(k, v, now, 0) for k, v in (metrics or {}).items()]
        ms += [Metric(k, v, now, step) for k, step, v in history]
        for i in range(max(len(_chunks(p, BATCH_PARAMS)), len(_chunks(t, BATCH_TAGS)), len(_chunks(ms, BATCH_METRICS)))):
            pc, tc, mc = p[i * BATCH_PARAMS:(i + 1) * BATCH_PARAMS], t[i * BATCH_TAGS:(i + 1) * BATCH_TAGS], \
                ms[i * BATCH_METRICS:(i + 1) * BATCH_METRICS]
            if pc or tc or mc:
                self.client.log_batch(run_id, metrics=mc, params=pc, tags=tc, synchronous=True)

    # ------------------------------------------------------------------ the execution

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except Exception:  # noqa: BLE001 - created meanwhile by another execution: read it back
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _find_existing(self, execution_id: str) -> None:
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`mlw.execution_id` = '{execution_id}'",
                                       max_results=50000)
        for run in runs:
            tags = run.data.tags
            if m.PARENT_TAG not in tags:
                self.parent_run_id = run.info.run_id
        for run in runs:
            tags = run.data.tags
            if tags.get(m.PARENT_TAG) == self.parent_run_id and "mlw.task_id" in tags:
                self.task_runs[tags["mlw.task_id"]] = run.info.run_id

    def start(self, execution: WorkflowExecution) -> None:
        """The experiment and the parent run (found again when this execution was logged before)."""
        def begin() -> None:
            self.client = self.client or mlflow_client(self.uri)
            self.experiment_id = self._experiment_id()
            self._find_existing(execution.id)
            if self.parent_run_id is None:
                start, _ = m.times(execution)
                run = self.client.create_run(self.experiment_id, start_time=start, tags=m.parent_tags(execution))
                self.parent_run_id = run.info.run_id
                self._log_batch(self.parent_run_id, params=m.flatten(execution.params))
        self._guard("starting the parent run", begin)

    def task(self, execution: WorkflowExecution, result: TaskResult) -> None:
        """One finished task's run (and its trials' and model), unless it is already logged."""
        if result.task_id in self.task_runs or result.task_id in self.seen:
            return
        self.seen.add(result.task_id)
        trials = m.trials_of(result) if result.study else []
        models = self.log_models and result.status == "succeeded" and self.by_id.get(result.task_id) is not None
        if self.parent_run_id is None:  # the start failed: count what is lost
            self.not_logged += 1 + len(trials)
            return
        task = self.by_id.get(result.task_id)

        def create() -> str:
            start, end = m.times(result)
            tags = m.task_tags(result, task, execution_id=execution.id, parent_run_id=self.parent_run_id)
            if result.status == "cached" and result.cache_key:
                origin = self._computing_run(result.cache_key)
                if origin:
                    tags["mlw.computed_by_run"] = origin
            run = self.client.create_run(self.experiment_id, start_time=start or end, tags=tags)
            run_id = run.info.run_id
            self._log_batch(run_id, params=m.task_params(task), metrics=m.metrics_of(result.metrics), at=end)
            self.client.set_terminated(run_id, m.TASK_STATUS[result.status], end_time=end)
            return run_id
        run_id = self._guard(f"logging task {result.task_id!r}", create)
        if run_id is None:
            self.not_logged += len(trials)
            return
        self.task_runs[result.task_id] = run_id
        for trial in trials:
            self._guard(f"logging a trial of {result.task_id!r}", lambda t=trial: self._trial(execution, run_id, t))
        if models:
            self._models(execution, result, run_id)

    def _computing_run(self, cache_key: str) -> str | None:
        runs = self.client.search_runs([self.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
                                       filter_string=f"tags.`mlw.cache_key` = '{cache_key}' and tags.`mlw.cache` = 'miss' "
                                                     "and tags.`mlw.status` = 'succeeded'")
        return runs[0].info.run_id if runs else None

    def _trial(self, execution: WorkflowExecution, task_run: str, trial: dict[str, Any]) -> None:
        tags = {m.PARENT_TAG: task_run, m.RUN_NAME_TAG: f"trial-{trial['number']}", "mlw.execution_id": execution.id,
                "mlw.trial": str(trial["number"]), "mlw.trial_state": trial["state"],
                "mlw.cache": "hit" if trial["cached"] else "miss"}
        if trial["best"]:
            tags["mlw.best_trial"] = "true"
        run = self.client.create_run(self.experiment_id, start_time=trial["started"], tags=tags)
        history = [(f"{trial['metric']}.intermediate", step, v) for step, v in trial["history"]]
        self._log_batch(run.info.run_id, params=trial["params"], metrics=trial["metrics"], history=history,
                        at=trial["ended"])
        status = "FINISHED" if trial["state"] in ("complete", "pruned") else "FAILED"
        self.client.set_terminated(run.info.run_id, status, end_time=trial["ended"])

    def _models(self, execution: WorkflowExecution, result: TaskResult, run_id: str) -> None:
        if self.error is not None:
            return
        try:
            found = trained_models(self.plan, execution, result.task_id, self.settings, self.base_dir)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be read is reported as not logged
            log.warning("model of task %r not logged to MLflow: %s: %s", result.task_id, type(exc).__name__, exc)
            self.not_logged += 1
            return
        for name, model, example in found:
            def upload(name=name, model=model, example=example) -> None:
                with tempfile.TemporaryDirectory(prefix="mlw-mlflow-") as tmp:
                    path = save_mlflow_model(model, os.path.join(tmp, name), example=example)
                    self.client.log_artifacts(run_id, path, artifact_path=name)
                self.client.set_tag(run_id, "mlw.model_uri", f"runs:/{run_id}/{name}")
            self._guard(f"logging the model of {result.task_id!r}", upload)

    def finish(self, execution: WorkflowExecution) -> Summary:
        """Every task not logged yet, then the parent run's end: status, counts, plan and report."""
        for result in execution.tasks.values():
            if result.finished:
                self.task(execution, result)
        if self.parent_run_id is not None:
            def close() -> None:
                counts = {f"tasks_{k}": float(v) for k, v in execution.counts().items()}
                if execution.duration_s is not None:
                    counts["duration_s"] = execution.duration_s
                self._log_batch(self.parent_run_id, tags={"mlw.status": execution.status}, metrics=counts)
                self.client.log_text(self.parent_run_id, m.plan_json(execution), "plan.json")
                if self.report is not None:
                    self.client.log_text(self.parent_run_id, self.report(execution), "report.html")
                _, end = m.times(execution)
                self.client.set_terminated(self.parent_run_id, m.EXECUTION_STATUS[execution.status], end_time=end)
            self._guard("closing the parent run", close)
        return Summary(uri=self.uri, experiment=self.experiment, parent_run_id=self.parent_run_id,
                       logged=self.logged, not_logged=self.not_logged, error=self.error)
