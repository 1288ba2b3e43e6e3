"""IR -> Dask futures: the executor.

``Executor.run`` decides up front, on the client, what each task needs (skipped by ``when``,
served from a shared cache, carried over from a resumed execution, loaded from cache
because a running task needs its output, or run), checks resources against the live
workers, then submits the whole DAG at once with futures as arguments, so Dask schedules
dependents itself without a round trip through the client. Results come back as small
messages (see ``worker.py``); records go to the state backend in batches and lifecycle
events to the event bus.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import queue
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from mlflowdsl.errors import RuntimeFailure
from mlflowdsl.ir import Plan, Task
from mlflowdsl.runtime import resources as res
from mlflowdsl.runtime.events.base import Event, EventBus
from mlflowdsl.runtime.keyparts import plan_components
from mlflowdsl.runtime.tuning import tuned_key_parts
from mlflowdsl.runtime.records import AttemptError, TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.base import StateBackend
from mlflowdsl.runtime.worker import TaskSpec, decode_batch, meta_of, run_task
from mlflowdsl.settings import Settings

SHARED_STRATEGIES = ("disk", "redis", "hybrid")
FLUSH_INTERVAL_S = 0.25  # state writes are batched: a 1,000-task run must not do 3,000 commits
META_GRACE_S = 2.0  # how long a finished future may wait for its result message
SWEEP_INTERVAL_S = 0.3  # how often futures are checked for ends that sent no message

Listener = Callable[[WorkflowExecution, TaskResult | None], None]


class ResourceRefused(RuntimeFailure):
    """Some tasks ask for resources no worker has; nothing was submitted."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("no worker can run " + ("this task" if len(problems) == 1 else f"{len(problems)} tasks")
                         + ":\n  " + "\n  ".join(problems),
                         hint="lower the request, or add workers that declare the resource "
                              "(`dask worker ADDR --resources \"GPU=1\"`)")


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


@dataclass
class Decision:
    """What the client decided for each task before submitting."""

    keys: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)  # task id -> why
    cached: set[str] = field(default_factory=set)  # hits in a shared cache (not submitted)
    carried: set[str] = field(default_factory=set)  # finished in the resumed execution
    load: set[str] = field(default_factory=set)  # cached, but a running task needs the output
    run: list[str] = field(default_factory=list)  # topological order
    components: dict[str, dict] = field(default_factory=dict)  # task id -> its key's parts (keyparts.py)


FIRST_GRAPH_TASKS = 16  # tasks in the first graph a run submits; each next one is twice as big
MAX_GRAPH_TASKS = 4096


def ref(future: Any) -> Any:
    """A task argument that stands for ``future``'s result: a reference to its key, not the
    future itself. A future inside a task's arguments travels to the scheduler, which keeps the
    task's spec; where the scheduler runs in the client's process (the embedded cluster, a
    notebook's ``LocalCluster``) the copy it unpickles is a live future of the same client, so
    every dependency stayed referenced -- and in memory on the workers -- after the run (each run
    of the 502-task fan left 502 tasks behind). The caller keeps the future itself until its
    dependents are done."""
    from dask._task_spec import TaskRef

    return TaskRef(future.key)


def dask_key(task: Task, execution_id: str, run_no: str) -> str:
    """A unique key whose Dask task group is the task type (``mlw_model_training``), the way
    ``client.submit`` groups by function. Group names drive Dask's scheduling heuristics: a
    key that spelled out the task id put e.g. a fan-out's source in a group of its own, which
    made its 500 dependents "root-ish" and queued them one scheduler round trip at a time."""
    token = hashlib.md5(f"{execution_id}/{run_no}/{task.id}".encode()).hexdigest()
    return f"mlw_{task.type}-{token}"


def topological(plan: Plan) -> list[Task]:
    """The plan's tasks, dependencies first (ties by id); a cycle or an unknown dependency
    is a broken plan, not a user mistake the compiler would have let through."""
    by_id = plan.tasks_by_id()
    for t in plan.tasks:
        unknown = [d for d in t.dependencies if d not in by_id]
        if unknown:
            raise RuntimeFailure(f"task {t.id!r} depends on unknown task(s) {', '.join(unknown)}",
                                 hint="recompile the plan with `mlw compile`")
    indegree = {t.id: len(set(t.dependencies)) for t in plan.tasks}
    dependents: dict[str, list[str]] = {t.id: [] for t in plan.tasks}
    for t in plan.tasks:
        for d in set(t.dependencies):
            dependents[d].append(t.id)
    ready = sorted(tid for tid, n in indegree.items() if n == 0)
    order: list[Task] = []
    while ready:
        tid = ready.pop(0)
        order.append(by_id[tid])
        for dep in sorted(dependents[tid]):
            indegree[dep] -= 1
            if indegree[dep] == 0:
                ready.append(dep)
        ready.sort()
    if len(order) != len(plan.tasks):
        raise RuntimeFailure("the plan has a dependency cycle", hint="recompile the plan with `mlw compile`")
    return order


def decide(plan: Plan, order: list[Task], keys: dict[str, str], settings: Settings,
           resume: WorkflowExecution | None, contains: Callable[[str, str], bool]) -> Decision:
    """Pure planning over the plan, the shared cache (``contains(strategy, key)``) and a
    previous execution: nothing is submitted here."""
    d = Decision(keys=keys)
    previous = resume.tasks if resume else {}
    for task in order:
        upstream_skip = next((dep for dep in task.dependencies if dep in d.skipped), None)
        if task.skip:
            d.skipped[task.id] = "`when` is false"
        elif upstream_skip:
            d.skipped[task.id] = f"upstream task {upstream_skip!r} skipped"
        elif previous.get(task.id) is not None and previous[task.id].status in ("succeeded", "cached") \
                and previous[task.id].cache_key == keys[task.id]:
            d.carried.add(task.id)
        elif task.cache.strategy in SHARED_STRATEGIES and contains(task.cache.strategy, keys[task.id]):
            d.cached.add(task.id)
        else:
            d.run.append(task.id)
    # Walk back from what runs: a needed carried-over task is loaded from the shared cache
    # when it is there, and rerun otherwise (its outputs died with the old workers).
    by_id = plan.tasks_by_id()
    needed = {dep for tid in d.run for dep in by_id[tid].dependencies}
    run = set(d.run)
    for task in reversed(order):
        if task.id not in needed or task.id in run:
            continue
        if task.id in d.cached or (task.cache.strategy in SHARED_STRATEGIES
                                   and contains(task.cache.strategy, keys[task.id])):
            d.load.add(task.id)
        else:
            d.carried.discard(task.id)
            run.add(task.id)
            needed.update(by_id[task.id].dependencies)
    d.run = [t.id for t in order if t.id in run]
    return d


def absolute_paths(settings: Settings) -> Settings:
    return replace(settings, home=os.path.abspath(settings.home),
                   cache_dir=os.path.abspath(settings.cache_dir) if settings.cache_dir else None)


class Executor:
    def __init__(self, client, settings: Settings, state: StateBackend, bus: EventBus,
                 listener: Listener | None = None):
        self.client = client
        # Workers may run in another directory (an external cluster): paths must be absolute.
        self.settings = absolute_paths(settings)
        self.state = state
        self.bus = bus
        self.listener = listener
        self._caches: dict[str, Any] = {}

    # ------------------------------------------------------------------ planning

    def _contains(self, strategy: str, key: str) -> bool:
        if strategy not in self._caches:
            from mlflowdsl.runtime.cache import open_cache

            self._caches[strategy] = open_cache(strategy, self.settings)
        return self._caches[strategy].contains(key)

    def check_resources(self, tasks: list[Task]) -> set[str]:
        """Refuse tasks no live worker can run; returns the resource names workers declare."""
        workers = res.worker_resources(self.client.scheduler_info(n_workers=-1))
        problems = res.unsatisfiable(tasks, workers)
        if problems:
            raise ResourceRefused(problems)
        return res.declared_names(workers)

    # ------------------------------------------------------------------ running

    def run(self, plan: Plan, options: RunOptions = RunOptions()) -> WorkflowExecution:
        order = topological(plan)
        keys, components = plan_components(tuned_key_parts(plan), options.base_dir)
        decision = decide(plan, order, keys, self.settings, options.resume, self._contains)
        decision.components = components
        by_id = plan.tasks_by_id()
        declared = self.check_resources([by_id[t] for t in decision.run])
        run = _Run(self, plan, decision, options, order, declared)
        return run.execute()


def _usage_fields(usage: list[dict[str, Any]]) -> dict[str, Any]:
    """The record's resource fields from a result message's per-attempt usage (issue 8)."""
    if not usage:
        return {}
    from mlflowdsl.runtime.records import AttemptUsage
    from mlflowdsl.runtime.usage import summarize

    return {"usage": [AttemptUsage(**u) for u in usage], **summarize(usage)}


class _Dispatcher:
    """The handler of one client's message topic: routes each message to the queue of the run
    it belongs to (by execution id). It holds the queues of runs in flight only: a run removes
    its own when it ends."""

    def __init__(self) -> None:
        self.queues: dict[str, queue.Queue] = {}

    def __call__(self, event: tuple[float, dict]) -> None:  # runs on the client's event loop
        for msg in decode_batch(event[1].get("batch")):
            messages = self.queues.get(msg.get("execution_id"))
            if messages is not None:
                messages.put(("event", msg))


_client_topics: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> (topic, dispatcher)
_client_topics_lock = threading.Lock()


def client_topic(client) -> tuple[str, _Dispatcher]:
    """The topic on which workers send a client's runs their messages, subscribed once per
    client. A subscription per run cost each run ~10 ms before its first task could start: it is
    a message on the client's batched stream to the scheduler, which then holds the next message
    -- the run's first graph -- for its 10 ms interval. (A handler per run also stayed in the
    client after ``unsubscribe_topic``, with everything it referenced.)"""
    with _client_topics_lock:
        entry = _client_topics.get(client)
        if entry is None:
            topic, dispatcher = f"mlw-{uuid.uuid4().hex[:12]}", _Dispatcher()
            client.subscribe_topic(topic, dispatcher)
            entry = _client_topics[client] = (topic, dispatcher)
        return entry


def _release_later(futures: list[Any]) -> None:
    """Drop the run's futures in a background thread, so their outputs are freed on the
    cluster without the caller waiting for one event-loop wake-up per future."""
    if futures:
        threading.Thread(target=futures.clear, name="mlw-release", daemon=True).start()


class _Run:
    """One execution in flight: futures, records, the message queue."""

    def __init__(self, executor: Executor, plan: Plan, decision: Decision, options: RunOptions,
                 order: list[Task], declared: set[str]):
        self.order = order
        self.declared = declared
        self.ex = executor
        self.client = executor.client
        self.plan = plan
        self.decision = decision
        self.options = options
        self.by_id = plan.tasks_by_id()
        self.messages: queue.Queue = queue.Queue()
        self.futures: dict[str, Any] = {}
        self.done_futures: list[Any] = []
        self.started_ids: set[str] = set()
        self.dirty: set[str] = set()
        self.finished_at: dict[str, float] = {}  # future done, result message not yet seen
        self.cancelled = False
        self.failure_seen = False
        self.execution = self._initial_execution()
        self.topic, self.dispatcher = client_topic(self.client)
        # Tuning (runtime/tuning.py): a tuned task runs as a study whose best trial's future
        # becomes its output; its dependents are submitted when the study ends.
        self.tunings = {t.task: t for t in plan.tunings}
        self.outputs: dict[str, Any] = {}  # every submitted task's future, kept for late dependents
        self.studies: dict[str, Any] = {}  # tuned task id -> StudyDriver in flight
        self.deferred: list[str] = []  # waiting for a study (topological order)
        self.run_no = ""

    # ------------------------------------------------------------------ records

    def _initial_execution(self) -> WorkflowExecution:
        d, plan, now = self.decision, self.plan, time.time()
        prev = self.options.resume
        if prev is not None:
            execution = prev.advance("running", restart=True, ended=None, error=None, started=now)
        else:
            execution = WorkflowExecution(
                id=self.options.execution_id or uuid.uuid4().hex[:12], workflow_id=plan.workflow.id,
                workflow_name=plan.workflow.name, plan_fingerprint=plan.fingerprint or plan.compute_fingerprint(),
                plan_json=plan.model_dump_json(), params=dict(plan.workflow.params),
                source=plan.workflow.source, keep_going=self.options.keep_going, created=now,
            ).advance("running", started=now)
        tasks: dict[str, TaskResult] = {}
        origin = self.ex.state.computed_results(d.keys[t] for t in d.cached) if d.cached else {}
        for t in plan.tasks:
            key = d.keys[t.id]
            parts = d.components.get(t.id)
            if t.id in d.carried and prev is not None:
                tasks[t.id] = prev.tasks[t.id]
            elif t.id in d.skipped:
                tasks[t.id] = TaskResult(task_id=t.id, status="skipped", error=d.skipped[t.id], cache_key=key,
                                         key_components=parts)
            elif t.id in d.cached:
                source = origin.get(key)
                tasks[t.id] = TaskResult(task_id=t.id, status="cached", cached=True, cache_key=key, duration_s=0.0,
                                         metrics=source.metrics if source else {},
                                         artifacts=source.artifacts if source else {}, key_components=parts)
            else:
                tasks[t.id] = TaskResult(task_id=t.id, cache_key=key, key_components=parts)
        return execution.model_copy(update={"tasks": tasks})

    def _emit(self, type: str, payload: dict[str, Any] | None = None, *, at: float | None = None) -> None:
        self.ex.bus.emit(Event.create(type, execution_id=self.execution.id, at=at,
                                      workflow_id=self.execution.workflow_id, payload=payload or {}))

    def _update(self, result: TaskResult) -> None:
        # In place: this run owns its execution record, and copying the task map on every
        # update was O(tasks) per message.
        self.execution.tasks[result.task_id] = result
        self.dirty.add(result.task_id)
        if self.ex.listener:
            self.ex.listener(self.execution, result)

    def _flush(self, *, header: bool = False) -> None:
        if header:
            self.ex.state.save_execution(self.execution)
        if self.dirty:
            self.ex.state.save_task_results(self.execution.id, [self.execution.tasks[t] for t in self.dirty])
            self.dirty.clear()

    # ------------------------------------------------------------------ messages

    def _handle_event(self, msg: dict[str, Any]) -> None:
        tid = msg.get("task_id")
        current = self.execution.tasks.get(tid)
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
                self._update(current.advance("running", started=msg.get("time"), worker=msg.get("worker")))
                self._emit("task.started", {"task_id": tid, "worker": msg.get("worker")})
        elif kind == "retried":
            self._emit("task.retried", {"task_id": tid, "attempt": msg.get("attempt"),
                                        "delay_s": msg.get("delay_s"), "error": msg.get("error")})
        elif kind == "done":
            self._finish_task(tid, msg)

    def _finish_task(self, tid: str, meta: dict[str, Any]) -> None:
        current = self.execution.tasks[tid]
        status = meta["status"]
        if tid in self.decision.load and status != "cached" and current.status == "cached":
            # the entry vanished between planning and loading: the dependents cannot run
            self._update(current.advance("failed", restart=True, error=meta.get("error")))
            self.futures_done(tid)
            self._emit("task.failed", {"task_id": tid, "error": meta.get("error")})
            return
        if current.finished:
            self.futures_done(tid)
            return
        started = meta.get("started") or current.started
        ended = meta.get("ended") or time.time()
        if current.status == "pending" and meta.get("started"):
            # its start message was folded into this one (see worker._Outbox)
            self.started_ids.add(tid)
            self._emit("task.started", {"task_id": tid, "worker": meta.get("worker")}, at=started)
        result = current.advance(
            status, attempts=meta.get("attempts", 0),
            attempt_errors=[AttemptError(**e) for e in meta.get("attempt_errors", [])],
            started=started, ended=ended,
            duration_s=(ended - started) if started and status != "cached" else (0.0 if status == "cached" else None),
            metrics=meta.get("metrics") or {}, artifacts=meta.get("artifacts") or {},
            cached=bool(meta.get("cached")), error=meta.get("error"),
            worker=meta.get("worker") or current.worker, study=meta.get("study") or current.study,
            **_usage_fields(meta.get("usage") or []),
        )
        self._update(result)
        self.futures_done(tid)
        event = {"succeeded": "task.completed", "cached": "task.cached", "failed": "task.failed",
                 "skipped": "task.skipped"}[status]
        payload = {"task_id": tid, "attempts": result.attempts, "duration_s": result.duration_s,
                   "metrics": result.metrics, "cache_key": result.cache_key}
        if result.error:
            payload["error"] = result.error
        self._emit(event, payload)
        if status == "failed" and not self.options.keep_going and not self.failure_seen:
            self.failure_seen = True
            self._cancel_unstarted(f"cancelled after task {tid!r} failed (fail-fast)")
        elif status == "failed":
            self.failure_seen = True

    def futures_done(self, tid: str) -> None:
        # The reference is kept until the run ends (as ``dask.compute`` does): releasing a
        # future costs a wake-up of the client's event loop each, which competed with the
        # in-process scheduler and showed up as per-task overhead on wide DAGs.
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
            current = self.execution.tasks[tid]
            if current.finished:
                self.futures_done(tid)
                return
            if future.status == "cancelled":
                error = "cancelled"
            else:
                try:
                    exc = future.exception(timeout=5)
                except Exception as e:  # noqa: BLE001
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
            except Exception as exc:  # noqa: BLE001
                meta = {"status": "failed", "error": f"result of a finished task could not be read: {exc}"}
            self._finish_task(tid, meta)

    def _cancel_unstarted(self, why: str) -> None:
        self._drop_deferred(why)
        victims = [tid for tid in self.futures if tid not in self.started_ids
                   and not self.execution.tasks[tid].finished and tid not in self.decision.load]
        if victims:
            self.client.cancel([self.futures[t] for t in victims])
        for tid in victims:
            self._update(self.execution.tasks[tid].advance("skipped", error=why))
            self._emit("task.skipped", {"task_id": tid, "error": why})
            self.futures_done(tid)

    # ------------------------------------------------------------------ main loop

    def _submit(self) -> None:
        d = self.decision
        self.run_no = uuid.uuid4().hex[:6]  # resume reuses the execution id: keys must still be new
        wanted = d.load | set(d.run)
        to_submit = [t.id for t in self.order if t.id in wanted]
        batch: list[str] = []
        for tid in to_submit:
            load_only = tid in d.load
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
        load_only = tid in self.decision.load
        upstream = () if load_only else tuple(task.dependencies)
        spec = TaskSpec(execution_id=self.execution.id, task=task, cache_key=self.decision.keys[tid],
                        upstream_ids=upstream, settings=self.ex.settings, base_dir=self.options.base_dir,
                        topic=self.topic, load_only=load_only, plan_fingerprint=self.plan.fingerprint)
        return spec, upstream

    def _resources(self, tid: str) -> dict[str, float] | None:
        if tid in self.decision.load:
            return None
        return res.requirements(self.by_id[tid], self.declared) or None

    def _submit_graph(self, tids: list[str]) -> None:
        """Submit tasks (in topological order) as whole graphs, one ``update-graph`` per run
        of consecutive tasks that ask for the same resources, instead of one per task.

        A ``client.submit`` per task cost the scheduler a graph update each (ordering, a
        generation, a message), which made wide DAGs of short tasks ~1.5x slower than the tasks
        themselves. Dependencies are passed as references to their keys (see :func:`ref`),
        whether in the same graph or submitted earlier (another graph, a study's best trial).

        Graphs grow geometrically (16, 32, 64, ... tasks): a worker handed hundreds of tasks
        in one message processes them all before it starts the first, so one graph for a
        whole fan-out delayed its start by ~30 ms; small first graphs get work going at once
        and the number of graph updates stays logarithmic."""
        from dask._expr import LLGExpr
        from dask._task_spec import Task as DaskTask
        from dask._task_spec import TaskRef

        start, chunk = 0, FIRST_GRAPH_TASKS
        while start < len(tids):
            resources = self._resources(tids[start])
            end = start + 1
            while end < len(tids) and end - start < chunk and self._resources(tids[end]) == resources:
                end += 1
            chunk = min(2 * chunk, MAX_GRAPH_TASKS)
            dsk, in_graph = {}, {}  # key -> Dask task; task id -> key
            for tid in tids[start:end]:
                spec, upstream = self._spec(tid)
                key = in_graph[tid] = dask_key(self.by_id[tid], self.execution.id, self.run_no)
                args = [TaskRef(in_graph[u] if u in in_graph else self.outputs[u].key) for u in upstream]
                # The spec travels as bytes: the scheduler unpickles a submitted graph and
                # pickles each task again to send it to a worker, which for our specs (pydantic
                # models) cost more than the no-op tasks of a wide DAG themselves.
                dsk[key] = DaskTask(key, run_task, pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL), *args)
            keys = list(in_graph.values())
            # As client.submit does: a random token, or Dask tokenizes (pickles and hashes)
            # every task of the graph to name it -- 0.17 s for 500 tasks.
            graph = LLGExpr(dsk, _determ_token=uuid.uuid4().hex)
            futures = self.client.get(graph, keys, sync=False, resources=resources)
            for tid, future in zip(tids[start:end], futures):
                self.futures[tid] = self.outputs[tid] = future
            start = end

    def _submit_one(self, tid: str) -> None:
        spec, upstream = self._spec(tid)
        key = dask_key(self.by_id[tid], self.execution.id, self.run_no)
        future = self.client.submit(run_task, spec, *[ref(self.outputs[u]) for u in upstream], key=key, pure=False,
                                    resources=self._resources(tid))
        self.futures[tid] = self.outputs[tid] = future

    # ------------------------------------------------------------------ tuning

    def _start_study(self, tid: str) -> None:
        from mlflowdsl.runtime.tuning import start_study

        self.studies[tid] = start_study(self, tid)
        self._handle_event({"kind": "started", "task_id": tid, "time": time.time(), "worker": None})

    def _poll_studies(self) -> None:
        for tid, driver in list(self.studies.items()):
            if not driver.done:
                continue
            del self.studies[tid]
            outcome = driver.outcome
            if outcome.ok:
                self.outputs[tid] = outcome.best_future
            else:
                from mlflowdsl.runtime.tuning import failed_envelope

                self.outputs[tid] = self.client.submit(failed_envelope, tid, outcome.meta.get("error"), pure=False)
            self._finish_task(tid, outcome.meta)
            waiting, self.deferred = self.deferred, []
            for dep in waiting:  # still topological: a task's deferred upstream is submitted first
                if any(u in self.studies or u in self.deferred for u in self.by_id[dep].dependencies):
                    self.deferred.append(dep)
                elif not self.execution.tasks[dep].finished:
                    self._submit_one(dep)

    def _drop_deferred(self, why: str) -> None:
        for driver in self.studies.values():
            driver.stop()
        for tid in self.deferred:
            if not self.execution.tasks[tid].finished:
                self._update(self.execution.tasks[tid].advance("skipped", error=why))
                self._emit("task.skipped", {"task_id": tid, "error": why})
        self.deferred = []

    def execute(self) -> WorkflowExecution:
        ex = self.execution
        self._flush(header=True)
        # Task rows go with the first periodic flush: writing hundreds of pending rows before
        # submitting would delay every task of the run.
        self.dirty.update(ex.tasks)
        self._emit("workflow.submitted", {"tasks": len(ex.tasks), "plan_fingerprint": ex.plan_fingerprint})
        self._emit("workflow.started", {"run": len(self.decision.run), "cached": len(self.decision.cached),
                                        "carried": len(self.decision.carried)})
        for tid in sorted(self.decision.cached):
            self._emit("task.cached", {"task_id": tid, "cache_key": self.decision.keys[tid]})
        for tid, why in sorted(self.decision.skipped.items()):
            self._emit("task.skipped", {"task_id": tid, "error": why})
        if self.ex.listener:
            self.ex.listener(self.execution, None)
        self.dispatcher.queues[self.execution.id] = self.messages
        try:
            self._submit()
            last_flush = last_sweep = last_cancel_check = time.monotonic()
            while self.futures or self.studies or self.deferred:
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
                    self._flush()
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
        failed = [t for t, r in self.execution.tasks.items() if r.status == "failed"]
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
            except Exception:  # noqa: BLE001 - the cluster may already be gone
                pass
        for tid, r in list(self.execution.tasks.items()):
            if not r.finished:
                self._update(r.advance("skipped", error=why))
        self.futures.clear()

    def _close(self, status: str, error: str | None) -> WorkflowExecution:
        if self.dispatcher.queues.get(self.execution.id) is self.messages:
            del self.dispatcher.queues[self.execution.id]
        _release_later(self.done_futures)
        self.done_futures = []
        self.execution = self.execution.advance(status, ended=time.time(), error=error)
        self._flush(header=True)
        event = {"succeeded": "workflow.completed", "failed": "workflow.failed",
                 "cancelled": "workflow.cancelled"}[status]
        self._emit(event, {"status": status, "error": error, "counts": self.execution.counts(),
                           "duration_s": self.execution.duration_s})
        if self.ex.listener:
            self.ex.listener(self.execution, None)
        return self.execution
