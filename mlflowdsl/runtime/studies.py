"""The run's side of a tuned task: the :class:`~mlflowdsl.runtime.tuning.host.StudyHost` a
study driver submits its trials through, and the output of a study that failed."""

from __future__ import annotations

import logging
from typing import Any, Callable

from mlflowdsl.ir import Task
from mlflowdsl.runtime.dask_graph import ref
from mlflowdsl.runtime.keys import dask_key
from mlflowdsl.runtime.worker import Envelope, TaskSpec, meta_of, run_task
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)


class RunStudyHost:
    """Submits the trials of tuned task ``task`` on ``client`` with its upstream outputs (read
    from the run's ``outputs`` when a trial is submitted). Trial messages go to a topic of
    their own (``topic``, which nobody reads): they must not end the tuned task's record."""

    def __init__(self, client: Any, task: Task, *, execution_id: str, run_no: str, outputs: dict[str, Any],
                 settings: Settings, base_dir: str, topic: str, plan_fingerprint: str,
                 resources: dict[str, float] | None, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self.client = client
        self.task = task
        self.upstream = tuple(task.dependencies)
        self.execution_id = execution_id
        self.run_no = run_no
        self.outputs = outputs
        self.settings = settings
        self.base_dir = base_dir
        self.topic = topic
        self.plan_fingerprint = plan_fingerprint
        self.resources = resources
        self.emit = emit

    def make_spec(self, task: Task, key: str, trial: dict[str, Any] | None) -> TaskSpec:
        return TaskSpec(execution_id=self.execution_id, task=task, cache_key=key, upstream_ids=self.upstream,
                        settings=self.settings, base_dir=self.base_dir, topic=self.topic, trial=trial,
                        plan_fingerprint=self.plan_fingerprint)

    def submit(self, spec: TaskSpec, label: str) -> Any:
        return self.client.submit(run_task, spec, *[ref(self.outputs[u]) for u in self.upstream],
                                  key=dask_key(self.task.type, self.execution_id, self.run_no, label),
                                  pure=False, resources=self.resources)

    def fetch_meta(self, future: Any) -> dict[str, Any]:
        if future.status in ("error", "cancelled"):  # Dask lost it (e.g. its worker died too often)
            raise future.exception() or RuntimeError(f"trial task {future.status}")
        return self.client.submit(meta_of, ref(future), pure=False).result()

    def spread_inputs(self) -> None:
        """Copy the trials' inputs to every worker: Dask places a task where its inputs are,
        so with the data on one worker parallel trials would queue there one after another."""
        inputs = [self.outputs[u] for u in self.upstream]
        if not inputs:
            return
        try:
            from distributed import wait  # noqa: PLC0415 - heavy: distributed only when a study runs

            wait(inputs)
            self.client.replicate(inputs)
        except Exception as exc:  # noqa: BLE001 - only a placement hint; the trials run anyway
            log.debug("inputs of tuned task %s not replicated: %s", self.task.id, exc)

    def cancel(self, futures: list[Any]) -> None:
        if futures:
            try:
                self.client.cancel(futures)
            except Exception as exc:  # noqa: BLE001 - the cluster may be gone
                log.debug("cancelling %d trial(s) of task %s failed: %s", len(futures), self.task.id, exc)

    def on_trial(self, record: dict[str, Any]) -> None:
        self.emit("tuning.trial_completed", {  # one event per finished trial
            "task_id": self.task.id, "trial": record["number"], "state": record.get("state"),
            "value": record.get("value"), "params": record.get("params") or {}, "cached": record.get("cached"),
            "error": record.get("error")})


def failed_envelope(task_id: str, error: str | None) -> Envelope:
    """The output of a tuned task whose study failed: its dependents see a failed upstream."""
    return Envelope(task_id, False, meta={"status": "failed", "error": error})
