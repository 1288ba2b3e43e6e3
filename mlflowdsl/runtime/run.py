"""One execution in flight: submission of the decided tasks, the main loop, cancellation.

:class:`Run` submits what ``planning`` decided must run or be loaded, as whole graphs
(``dask_graph``) with dependencies passed by key, so Dask schedules dependents itself without a
round trip through the client. Results come back as messages on the client's topic
(``messages``); the main loop applies them to the record (``run_record``), finds futures that
ended without a message, flushes the record periodically and polls for cancellation. A tuned
task runs as a study (``tuning.StudyDriver``, submitting through ``studies.RunStudyHost``) whose
best trial's future becomes its output; its dependents are submitted when the study ends.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from mlflowdsl.ir import Plan, Task
from mlflowdsl.runtime import resources as res
from mlflowdsl.runtime.dask_graph import Graph, ref
from mlflowdsl.runtime.keys import dask_key, data_fingerprints
from mlflowdsl.runtime.messages import client_topic
from mlflowdsl.runtime.planning import Decision
from mlflowdsl.runtime.records import WorkflowExecution
from mlflowdsl.runtime.run_record import TASK_EVENTS, RunRecord, finished_result, initial_execution
from mlflowdsl.runtime.studies import RunStudyHost, failed_envelope
from mlflowdsl.runtime.tuning import StudyDriver
from mlflowdsl.runtime.worker import TaskSpec, meta_of, run_task, store_result

if TYPE_CHECKING:
    from mlflowdsl.runtime.executor import Executor

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25  # state writes are batched: a large run must not commit once per message
META_GRACE_S = 2.0  # how long a finished future may wait for its result message
SWEEP_INTERVAL_S = 0.3  # how often futures are checked for ends that sent no message
FIRST_GRAPH_TASKS = 16  # tasks in the first graph a run submits; each next one is twice as big
MAX_GRAPH_TASKS = 4096


@dataclass(frozen=True)
class RunOptions:
    keep_going: bool = False
    base_dir: str = "."  # the workflow file's directory: relative data paths start here
    execution_id: str | None = None
    resume: WorkflowExecution | None = None  # finish this execution instead of starting anew
    # Cluster mode writes each result as soon as it arrives (0): a result must be committed
    # to the shared state before the instance can die with it.
    flush_interval_s: float = FLUSH_INTERVAL_S
    # Polled by the main loop; a non-empty string cancels the run with that reason
    # (cluster mode's `mlw cancel` flag).
    cancel_check: Callable[[], str | None] | None = None
    # Cluster mode: the owner's fencing token, sent with every task (coordination.ownership),
    # and a (local, cheap) check whether this instance still owns the execution; once it says
    # no, the run stops its graph and writes and emits nothing more.
    fence: Any = None
    owner_check: Callable[[], bool] | None = None


def _release_later(futures: list[Any]) -> None:
    """Drop the run's futures in a background thread, so their outputs are freed on the
    cluster without the caller waiting for one event-loop wake-up per future."""
    if futures:
        threading.Thread(target=futures.clear, name="mlw-release", daemon=True).start()


class Run:
    """One execution in flight: futures, the record, the message queue."""

    def __init__(self, executor: Executor, plan: Plan, decision: Decision, options: RunOptions,
                 declared: set[str]):
        self.order = decision.order
        self.declared = declared
        self.settings = executor.settings
        self.fingerprint = executor.fingerprint
        self.plan = plan
        self.decision = decision
        self.options = options
        self.by_id = plan.tasks_by_id()
        self.messages: queue.Queue = queue.Queue()
        self.futures: dict[str, Any] = {}
        self.done_futures: list[Any] = []
        self.started_ids: set[str] = set()
        self.finished_at: dict[str, float] = {}  # future done, result message not yet seen
        self.failure_seen = False
        self.fenced = False  # a worker refused a task of ours (see worker._FENCED)
        self.record = RunRecord(
            initial_execution(plan, decision, resume=options.resume, execution_id=options.execution_id,
                              keep_going=options.keep_going, state=executor.state),
            executor.state, executor.bus, executor.listener, owner_check=options.owner_check)
        self.execution_id = self.record.execution.id
        self.recover = self._unknown_origin(executor.state)
        # Only a run that submits something asks for the client: a fully cached or skipped
        # one finishes without a cluster (the executor may open it on demand).
        self.client = self.topic = self.dispatcher = None
        if self.decision.run or self.decision.load or self.recover:
            self.client = executor.client
            self.topic, self.dispatcher = client_topic(self.client)
        else:
            executor.no_cluster_needed()
        self.tunings = {t.task: t for t in plan.tunings}
        self.outputs: dict[str, Any] = {}  # every submitted task's future, kept for late dependents
        self.studies: dict[str, StudyDriver] = {}  # tuned task id -> its study in flight
        self.stopped_studies: dict[str, str] = {}  # tuned task id -> why its study was stopped
        self.deferred: list[str] = []  # waiting for a study (topological order)
        self.run_no = ""
        self.log_target = executor.state.log_target()  # where workers write attempt logs

    def _unknown_origin(self, state) -> set[str]:
        """Cached tasks of a resumed execution whose entry no committed result describes: a
        previous owner computed them but died (or was fenced out) before committing. Their
        entries are loaded once so their records get the metrics and artifacts the entries
        hold, instead of none; their records are written when the load answers."""
        d = self.decision
        if self.options.resume is None or not d.cached:
            return set()
        known = state.computed_results(d.keys[t] for t in d.cached)
        return {t for t in d.cached if d.keys[t] not in known}

    def _recovered(self, tid: str, meta: dict[str, Any]) -> None:
        """The load of a cached task of unknown origin answered (see :meth:`_unknown_origin`)."""
        self.recover.discard(tid)
        current = self.record.tasks[tid]
        if meta.get("status") == "cached" and current.status == "cached":
            current = current.model_copy(update={"metrics": meta.get("metrics") or {},
                                                 "artifacts": meta.get("artifacts") or {},
                                                 "worker": meta.get("worker") or current.worker})
        self.record.update(current)

    # ------------------------------------------------------------------ messages

    def _handle_event(self, msg: dict[str, Any]) -> None:
        tid = msg.get("task_id")
        current = self.record.tasks.get(tid)
        kind = msg.get("kind")
        if current is None:
            return
        if current.finished:
            if kind == "done":  # e.g. a load task of a task recorded `cached` up front
                self._finish_task(tid, msg)
            return
        if kind == "started":
            self.started_ids.add(tid)
            if current.status == "pending":
                self.record.update(current.advance("running", started=msg.get("time"), worker=msg.get("worker")))
                self.record.emit("task.started", {"task_id": tid, "worker": msg.get("worker")})
        elif kind == "retried":
            self.record.emit("task.retried", {"task_id": tid, "attempt": msg.get("attempt"),
                                              "delay_s": msg.get("delay_s"), "error": msg.get("error")})
        elif kind == "done":
            self._finish_task(tid, msg)

    def _finish_task(self, tid: str, meta: dict[str, Any]) -> None:
        if meta.get("fenced"):  # a worker refused the task: another instance is taking over
            self.fenced = True
            return
        record = self.record
        current = record.tasks[tid]
        status = meta["status"]
        if tid in self.recover:
            self._recovered(tid, meta)
            if tid not in self.decision.load:
                self.futures_done(tid)
                return
        if tid in self.decision.load and status != "cached" and current.status == "cached":
            # the entry vanished between planning and loading: the dependents cannot run
            record.update(current.advance("failed", restart=True, error=meta.get("error")))
            self.futures_done(tid)
            record.emit("task.failed", {"task_id": tid, "error": meta.get("error")})
            return
        if current.finished:
            self.futures_done(tid)
            return
        if current.status == "pending" and meta.get("started"):
            # its start message was folded into this one (see worker._Outbox)
            self.started_ids.add(tid)
            record.emit("task.started", {"task_id": tid, "worker": meta.get("worker")}, at=meta["started"])
        result = finished_result(current, meta)
        record.update(result)
        self.futures_done(tid)
        payload = {"task_id": tid, "attempts": result.attempts, "duration_s": result.duration_s,
                   "metrics": result.metrics, "cache_key": result.cache_key}
        if result.error:
            payload["error"] = result.error
        record.emit(TASK_EVENTS[status], payload)
        if status == "failed" and not self.options.keep_going and not self.failure_seen:
            self.failure_seen = True
            self._cancel_unstarted(f"cancelled after task {tid!r} failed (fail-fast)")
        elif status == "failed":
            self.failure_seen = True

    def futures_done(self, tid: str) -> None:
        # The reference is kept until the run ends (as ``dask.compute`` does): releasing a
        # future costs a wake-up of the client's event loop each, which competes with an
        # in-process scheduler and shows up as per-task overhead on wide DAGs.
        future = self.futures.pop(tid, None)
        if future is not None:
            self.done_futures.append(future)
        self.finished_at.pop(tid, None)

    def _sweep_futures(self) -> None:
        """Find futures that ended without a result message: errors Dask raised itself (a
        task lost on too many dying workers), cancellations, and finished tasks whose message
        is late. Polling a status attribute is cheaper than a done-callback per future."""
        for tid, future in list(self.futures.items()):
            if future.status != "pending":
                self._handle_future(tid, future)

    def _handle_future(self, tid: str, future) -> None:
        if tid not in self.futures:
            return
        if future.status == "finished":
            self.finished_at.setdefault(tid, time.monotonic())
            return  # the result message normally arrives at about the same time
        if future.status in ("error", "cancelled"):
            current = self.record.tasks[tid]
            if current.finished:
                self.futures_done(tid)
                return
            if future.status == "cancelled":
                error = "cancelled"
            else:
                try:
                    exc = future.exception(timeout=5)
                except Exception as e:  # noqa: BLE001 - the error itself could not be fetched: reported instead
                    exc = e
                error = f"{type(exc).__name__}: {exc}"
            self._finish_task(tid, {"status": "failed" if future.status == "error" else "skipped",
                                    "error": error, "attempts": max(1, current.attempts)})

    def _fetch_missing_meta(self) -> None:
        now = time.monotonic()
        late = [tid for tid, t in self.finished_at.items() if now - t > META_GRACE_S and tid in self.futures]
        for tid in late:
            try:
                meta = self.client.submit(meta_of, ref(self.futures[tid]), pure=False).result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - recorded as the task's failure
                meta = {"status": "failed", "error": f"result of a finished task could not be read: {exc}"}
            self._finish_task(tid, meta)

    def _cancel_unstarted(self, why: str) -> None:
        self._drop_deferred(why)
        tasks = self.record.tasks
        victims = [tid for tid in self.futures if tid not in self.started_ids
                   and not tasks[tid].finished and tid not in self.decision.load]
        if victims:
            self.client.cancel([self.futures[t] for t in victims])
        for tid in victims:
            self.record.skip(tid, why)
            self.futures_done(tid)

    # ------------------------------------------------------------------ submission

    def _submit(self) -> None:
        d = self.decision
        self.run_no = uuid.uuid4().hex[:6]  # resume reuses the execution id: keys must still be new
        wanted = d.load | set(d.run) | self.recover
        batch: list[str] = []
        for tid in (t.id for t in self.order if t.id in wanted):
            load_only = tid in d.load or tid in self.recover
            if not load_only and tid in self.tunings:
                self._submit_graph(batch)  # the study's trials need its upstream futures
                batch = []
                self._start_study(tid)
            elif not load_only and any(u in self.studies or u in self.deferred for u in self.by_id[tid].dependencies):
                self.deferred.append(tid)
            else:
                batch.append(tid)
        self._submit_graph(batch)

    def _spec(self, tid: str) -> tuple[TaskSpec, tuple[str, ...]]:
        task = self.by_id[tid]
        load_only = tid in self.decision.load or tid in self.recover
        upstream = () if load_only else tuple(task.dependencies)
        spec = TaskSpec(execution_id=self.execution_id, task=task, cache_key=self.decision.keys[tid],
                        upstream_ids=upstream, settings=self.settings, base_dir=self.options.base_dir,
                        topic=self.topic, load_only=load_only, plan_fingerprint=self.plan.fingerprint,
                        fence=self.options.fence, logs=self.log_target)
        return spec, upstream

    def _resources(self, tid: str) -> dict[str, float] | None:
        if tid in self.decision.load or tid in self.recover:
            return None
        return res.requirements(self.by_id[tid], self.declared) or None

    def _key(self, task: Task) -> str:
        return dask_key(task.type, self.execution_id, self.run_no, task.id)

    def _submit_graph(self, tids: list[str]) -> None:
        """Submit tasks (in topological order) as whole graphs, one graph update per run of
        consecutive tasks that ask for the same resources, instead of one per task.

        Graphs grow geometrically (16, 32, 64, ... tasks): a worker handed hundreds of tasks
        in one message processes them all before it starts the first, so small first graphs
        get work going at once, and the number of graph updates stays logarithmic."""
        start, chunk = 0, FIRST_GRAPH_TASKS
        while start < len(tids):
            resources = self._resources(tids[start])
            end = start + 1
            while end < len(tids) and end - start < chunk and self._resources(tids[end]) == resources:
                end += 1
            chunk = min(2 * chunk, MAX_GRAPH_TASKS)
            graph, in_graph = Graph(), {}  # task id -> key
            for tid in tids[start:end]:
                spec, upstream = self._spec(tid)
                key = in_graph[tid] = self._key(self.by_id[tid])
                # The spec travels as bytes: the scheduler unpickles a submitted graph and
                # pickles each task again to send it to a worker, which for our specs (pydantic
                # models) costs more than the no-op tasks of a wide DAG themselves.
                graph.add(key, run_task, pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL),
                          deps=[in_graph[u] if u in in_graph else self.outputs[u].key for u in upstream])
            futures = graph.submit(self.client, resources)
            for tid, future in zip(tids[start:end], futures):
                self.futures[tid] = self.outputs[tid] = future
            start = end

    def _submit_one(self, tid: str) -> None:
        spec, upstream = self._spec(tid)
        future = self.client.submit(run_task, spec, *[ref(self.outputs[u]) for u in upstream],
                                    key=self._key(self.by_id[tid]), pure=False, resources=self._resources(tid))
        self.futures[tid] = self.outputs[tid] = future

    # ------------------------------------------------------------------ tuning

    def _start_study(self, tid: str) -> None:
        task = self.by_id[tid]
        host = RunStudyHost(self.client, task, execution_id=self.execution_id, run_no=self.run_no, outputs=self.outputs,
                            settings=self.settings, base_dir=self.options.base_dir, topic=f"{self.topic}-study-{tid}",
                            plan_fingerprint=self.plan.fingerprint,
                            resources=res.requirements(task, self.declared) or None, emit=self.record.emit)
        self.studies[tid] = StudyDriver(
            tuning=self.tunings[tid], task=task, execution_id=self.execution_id, settings=self.settings,
            input_keys=[self.decision.keys[d] for d in task.dependencies],
            data_fingerprints=data_fingerprints(task, self.options.base_dir, self.fingerprint), host=host).start()
        self._handle_event({"kind": "started", "task_id": tid, "time": time.time(), "worker": None})

    def _poll_studies(self) -> None:
        for tid, driver in list(self.studies.items()):
            if not driver.done:
                continue
            del self.studies[tid]
            outcome = driver.outcome
            meta = outcome.meta
            if outcome.ok:
                self.outputs[tid] = outcome.best_future
                self._cache_study_result(tid, outcome)
            else:
                if tid in self.stopped_studies:  # stopped by fail-fast or a cancel: say why, as for other tasks
                    meta = {**meta, "status": "skipped", "error": self.stopped_studies[tid]}
                self.outputs[tid] = self.client.submit(failed_envelope, tid, meta.get("error"), pure=False)
            self._finish_task(tid, meta)
            waiting, self.deferred = self.deferred, []
            for dep in waiting:  # still topological: a task's deferred upstream is submitted first
                if any(u in self.studies or u in self.deferred for u in self.by_id[dep].dependencies):
                    self.deferred.append(dep)
                elif not self.record.tasks[dep].finished:
                    self._submit_one(dep)

    def _cache_study_result(self, tid: str, outcome: Any) -> None:
        """The best trial's outputs under the tuned task's key (a shared cache only): the next
        unchanged run shows the task `cached` and runs no study. A failed write only costs that."""
        task = self.by_id[tid]
        if not task.cache.shared:
            return
        try:
            self.client.submit(store_result, outcome.best_future, self.settings, task, self.decision.keys[tid],
                               dict(outcome.meta.get("metrics") or {}), pure=False).result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - the run's result does not depend on it
            log.warning("could not cache the result of study %s: %s", tid, exc)

    def _drop_deferred(self, why: str) -> None:
        for tid, driver in self.studies.items():
            self.stopped_studies.setdefault(tid, why)
            driver.stop()
        for tid in self.deferred:
            if not self.record.tasks[tid].finished:
                self.record.skip(tid, why)
        self.deferred = []

    # ------------------------------------------------------------------ main loop

    def execute(self) -> WorkflowExecution:
        self.record.start(self.decision)
        self.record.dirty.difference_update(self.recover)  # written once their load answers
        if self.dispatcher is not None:
            self.dispatcher.queues[self.execution_id] = self.messages
        try:
            self._submit()
            last_flush = last_sweep = last_cancel_check = time.monotonic()
            owner_check = self.options.owner_check
            while self.futures or self.studies or self.deferred:
                if self.fenced or (owner_check is not None and not owner_check()):
                    return self._abandon()
                if self.studies:
                    self._poll_studies()
                try:
                    kind, item = self.messages.get(timeout=0.1)
                    while True:
                        self._handle_event(item)
                        kind, item = self.messages.get_nowait()
                except queue.Empty:
                    pass
                now = time.monotonic()
                if now - last_sweep > SWEEP_INTERVAL_S:
                    self._sweep_futures()
                    last_sweep = now
                if self.finished_at:
                    self._fetch_missing_meta()
                if now - last_flush > self.options.flush_interval_s:
                    self.record.flush()
                    last_flush = now
                if self.options.cancel_check is not None and now - last_cancel_check > SWEEP_INTERVAL_S:
                    last_cancel_check = now
                    why = self.options.cancel_check()
                    if why:
                        self._cancel_all(why)
                        return self._close("cancelled", why)
        except KeyboardInterrupt:
            self._cancel_all("cancelled by the user (Ctrl-C)")
            return self._close("cancelled", "cancelled by the user")
        except BaseException as exc:
            self._cancel_all(f"cancelled: the runner stopped ({type(exc).__name__})")
            self._close("failed", f"{type(exc).__name__}: {exc}")
            raise
        failed = [t for t, r in self.record.tasks.items() if r.status == "failed"]
        if failed:
            return self._close("failed", f"task(s) failed: {', '.join(sorted(failed))}")
        return self._close("succeeded", None)

    def _cancel_all(self, why: str) -> None:
        self._drop_deferred(why)
        for driver in list(self.studies.values()):
            driver.wait(10)  # it cancels its own trials
        futures = list(self.futures.values())
        if futures:
            try:
                self.client.cancel(futures)
            except Exception as exc:  # noqa: BLE001 - the cluster may already be gone
                log.debug("cancelling %d future(s) of execution %s failed: %s", len(futures), self.execution_id, exc)
        for r in list(self.record.tasks.values()):
            if not r.finished:
                self.record.update(r.advance("skipped", error=why))
        self.futures.clear()

    def _abandon(self) -> WorkflowExecution:
        """Another instance owns the execution now: cancel every future of this run (tasks
        not started yet will not start; their workers also refuse them by the fence), stop the
        studies, and leave the records and events to the new owner."""
        log.warning("execution %s has a newer owner: stopping this instance's graph of it", self.execution_id)
        self.record.owner_check = lambda: False
        self.record.held = []
        for driver in self.studies.values():
            driver.stop()
        futures = list(self.futures.values())
        if futures:
            try:
                self.client.cancel(futures)
            except Exception as exc:  # noqa: BLE001 - the cluster may already be gone
                log.debug("cancelling %d future(s) of execution %s failed: %s", len(futures), self.execution_id, exc)
        self.futures.clear()
        self.deferred = []
        if self.dispatcher is not None and self.dispatcher.queues.get(self.execution_id) is self.messages:
            del self.dispatcher.queues[self.execution_id]
        _release_later(self.done_futures)
        self.done_futures = []
        return self.record.execution

    def _close(self, status: str, error: str | None) -> WorkflowExecution:
        self.record.dirty.update(self.recover)  # loads that never answered: the records as decided
        self.recover = set()
        if self.dispatcher is not None and self.dispatcher.queues.get(self.execution_id) is self.messages:
            del self.dispatcher.queues[self.execution_id]
        _release_later(self.done_futures)
        self.done_futures = []
        return self.record.close(status, error)
