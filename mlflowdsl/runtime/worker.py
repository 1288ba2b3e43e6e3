"""What runs on a Dask worker: one task of a plan, with cache, retries and timeouts.

``run_task`` never raises for a task's own failure: it returns an :class:`Envelope` whose
``meta`` says what happened, so Dask does not cascade the exception into dependents, and a
dependent that receives a failed or skipped upstream envelope returns ``skipped`` at once.
The client learns about starts, retries and results from small messages the wrapper logs on
the worker (``Worker.log_event``, forwarded by the scheduler to the subscribed client): the
task outputs (models, data frames) stay on the cluster and never travel through the client.

Attempts with a timeout run in a forked child process that is killed (with its process
group) when the time is up: Python threads cannot be stopped, so this is the only way to
really end a hung attempt. Attempts without a timeout run inline in the worker thread.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import select
import signal
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from mlflowdsl.errors import MlwError
from mlflowdsl.ir import Task
from mlflowdsl.runtime import logcapture
from mlflowdsl.runtime.cache import open_cache
from mlflowdsl.runtime.registry.services import RegistryServices
from mlflowdsl.runtime.retry import backoff_delay, should_retry
from mlflowdsl.runtime.tuning.storage import trial_reporter
from mlflowdsl.runtime.usage import UsageSampler
from mlflowdsl.settings import Settings
from mlflowdsl.tasks import TaskContext, TaskFailed, TaskOutputs, get_task_type
from mlflowdsl.tasks.custom import Custom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs to run one task (pickled once per submit)."""

    execution_id: str
    task: Task
    cache_key: str
    upstream_ids: tuple[str, ...]  # the order of run_task's envelope arguments
    settings: Settings
    base_dir: str
    topic: str  # Dask event topic the client listens on
    load_only: bool = False  # a cached task whose output a running task needs
    # A tuning trial: where its study lives, so ``ctx.report`` reaches the pruner (runtime/tuning/)
    trial: dict[str, Any] | None = None
    plan_fingerprint: str = ""  # lineage for models a task registers
    # Cluster mode: the owner's fencing token (coordination.ownership.Fence); attempts start
    # and side effects commit only while it is current.
    fence: Any = None
    logs: dict[str, Any] | None = None  # where attempt logs go (StateBackend.log_target); None: not captured


@dataclass
class Envelope:
    task_id: str
    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    default_output: str = "output"
    meta: dict[str, Any] = field(default_factory=dict)

    def output(self, name: str) -> Any:
        if name in self.outputs:
            return self.outputs[name]
        if name == "output" and self.default_output in self.outputs:
            return self.outputs[self.default_output]
        raise TaskFailed(f"task {self.task_id!r} produced no output {name!r}",
                         hint=f"its outputs are: {', '.join(sorted(self.outputs)) or 'none'}")


class AttemptTimeout(Exception):
    """An attempt ran longer than the task's ``timeout`` and its process was killed."""


# ------------------------------------------------------------------------- reporting

class _Outbox:
    """Messages to the client, sent in batches by one thread per worker process.

    A ``log_event`` per message would wake the worker's event loop and cost the scheduler a
    message each, several per task. Batching every ``interval`` seconds keeps it to at most a
    few hundred messages per second, at the price of up to ``interval`` of latency in the
    client's view (Dask itself schedules dependents without waiting for it).

    The task's side takes no lock: ``put`` appends to a deque (atomic under the GIL) and sets
    an event only when the sending thread sleeps. A lock shared with the sending thread would
    make a task wait whenever that thread lost the GIL while holding it, and a thread that
    blocks has to win the GIL back from the worker's busy event loop. A batch travels as one
    pickled ``bytes`` (see :func:`decode_batch`): Dask walks a message's nested dicts in Python
    to look for objects to serialize, which costs more per message than one ``bytes``."""

    interval = 0.005

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._wake = threading.Event()
        self._idle = True  # the sending thread is asleep (or about to be) until _wake is set
        self._start_lock = threading.Lock()
        self._worker = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def put(self, topic: str, msg: dict[str, Any]) -> None:
        if self._worker is None:
            from distributed import get_worker  # noqa: PLC0415 - heavy: distributed only on a Dask worker

            self._worker = get_worker()  # raises ValueError off a worker (see _publish)
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._queue.append((topic, msg))
        if self._idle:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="mlw-outbox", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle = True
                if not self._queue:  # re-checked after saying so: a put in between sets _wake
                    self._wake.wait()
                self._wake.clear()
                self._idle = False
            time.sleep(self.interval)  # let messages of other tasks join the batch
            for topic, batch in self._drain().items():
                try:
                    self._worker.log_event(topic, {"batch": pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)})
                except Exception as exc:  # noqa: BLE001 - the worker is shutting down: the client fetches results itself
                    log.debug("dropped %d message(s) to %s: %s", len(batch), topic, exc)

    def _drain(self) -> dict[str, list[dict[str, Any]]]:
        """What is queued, per topic, in order; a task that ended before its start was sent
        needs one message, not two (the result carries the start time)."""
        batches: dict[str, list[dict[str, Any] | None]] = {}
        started_at: dict[tuple[str, str | None, str], int] = {}
        while True:
            try:
                topic, msg = self._queue.popleft()
            except IndexError:
                break
            batch = batches.setdefault(topic, [])
            kind = msg.get("kind")
            task = (topic, msg.get("execution_id"), msg["task_id"])
            if kind == "done":
                index = started_at.pop(task, None)
                if index is not None:
                    batch[index] = None
            elif kind == "started":
                started_at[task] = len(batch)
            batch.append(msg)
        return {topic: [m for m in batch if m is not None] for topic, batch in batches.items()}


def decode_batch(payload: Any) -> list[dict[str, Any]]:
    """The messages of one outbox batch (the client's side of :class:`_Outbox`)."""
    if isinstance(payload, bytes):
        return pickle.loads(payload)
    return list(payload or ())


_outbox = _Outbox()


def _publish(spec: TaskSpec, msg: dict[str, Any]) -> None:
    """Queue a small message for the client; never fails the task."""
    msg["execution_id"] = spec.execution_id  # a client's runs share its topic (messages.client_topic)
    try:
        _outbox.put(spec.topic, msg)
    except Exception as exc:  # noqa: BLE001 - off a worker (a task run in-process) nobody listens
        log.debug("message %r of %s not sent: %s", msg.get("kind"), msg.get("task_id"), exc)


def _worker_address() -> str | None:
    from distributed import get_worker  # noqa: PLC0415 - heavy: distributed only on a Dask worker

    try:
        return get_worker().address
    except ValueError:  # not on a Dask worker
        return None


def _meta(spec: TaskSpec, status: str, worker: str | None, **kw: Any) -> dict[str, Any]:
    meta = {"kind": "done", "task_id": spec.task.id, "status": status, "cache_key": spec.cache_key,
            "worker": worker, "attempts": 0, "attempt_errors": [], "metrics": {},
            "artifacts": {}, "cached": False, "error": None, "started": None, "ended": time.time()}
    meta.update(kw)
    return meta


def _finish(spec: TaskSpec, env: Envelope) -> Envelope:
    _publish(spec, env.meta)
    return env


# ------------------------------------------------------------------------- inputs

def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$ref"}


def _has_ref(value: Any) -> bool:
    return _is_ref(value) or (isinstance(value, list) and any(_is_ref(v) for v in value))


def resolve_refs(value: Any, upstream: dict[str, Envelope]) -> Any:
    """Replace ``{"$ref": "task.output"}`` (alone or in lists) by the upstream outputs."""
    if _is_ref(value):
        task_id, _, output = value["$ref"].rpartition(".")
        return upstream[task_id].output(output)
    if isinstance(value, list):
        return [resolve_refs(v, upstream) for v in value]
    return value


def store_result(envelope: Envelope, settings: Settings, task: Task, key: str, metrics: dict[str, float]) -> bool:
    """Cache a tuned task's result -- its best trial's outputs -- under the tuned task's own key,
    so an unchanged re-run serves the task from the cache instead of running the study again."""
    if not envelope.ok or task.cache.off:
        return False
    outputs = TaskOutputs(outputs=dict(envelope.outputs), metrics=_floats(metrics))
    open_cache(task.cache.strategy, settings).put(key, outputs, ttl=task.cache.ttl,
                                                  meta={"task_id": task.id, "task_type": task.type})
    return True


def _open_cache(spec: TaskSpec):
    if spec.task.cache.off:
        return None
    return open_cache(spec.task.cache.strategy, spec.settings)


# ------------------------------------------------------------------------- invocation

def invoke(task: Task, params: dict[str, Any], ctx: TaskContext) -> TaskOutputs:
    """Run one attempt of ``task`` with its references already resolved in ``params``."""
    if task.type == "custom":
        # the function's annotations say which parameters are inputs (mlflowdsl.tasks.custom)
        input_names = set(Custom.schema(task.uses or "").inputs)
        inputs = {k: v for k, v in params.items() if k in input_names}
        literal = {k: v for k, v in params.items() if k not in input_names}
        return Custom().run_function(task.uses, literal, inputs, ctx)
    cls = get_task_type(task.type)
    inputs = {k: v for k, v in params.items() if k in cls.inputs}
    literal = {k: v for k, v in params.items() if k not in inputs}
    return cls().run(cls.Params(**literal), inputs, ctx)


def _error_record(exc: BaseException, attempt: int) -> dict[str, Any]:
    retryable = exc.retryable if isinstance(exc, TaskFailed) else True
    return {"attempt": attempt, "type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)), "retryable": bool(retryable),
            "time": time.time()}


def run_with_timeout(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` in a forked child; kill its process group after ``timeout`` seconds.

    Errors come back as data (a dict) rather than pickled exceptions, whose constructors
    may not round-trip (``TaskFailed.retryable`` would be lost)."""
    fd, result_path = tempfile.mkstemp(prefix="mlw-attempt-", suffix=".pkl")
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # child: never return into the worker's code
        code = 1
        try:
            os.setpgid(0, 0)
            try:
                payload = ("ok", fn())
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as data
                payload = ("error", _error_record(exc, 0))
            try:
                data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                data = pickle.dumps(("error", _error_record(
                    TypeError(f"the task's result cannot be pickled: {exc}"), 0)))
            with open(result_path, "wb") as fh:
                fh.write(data)
            code = 0
        finally:
            os._exit(code)
    try:
        if not _wait_for_exit(pid, timeout):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:  # it exited just now
                pass
            os.waitpid(pid, 0)
            raise AttemptTimeout(f"attempt did not finish within its timeout of {timeout:g}s and was killed")
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or os.path.getsize(result_path) == 0:
            raise RuntimeError(f"the attempt's process died (exit status {os.waitstatus_to_exitcode(status)})")
        with open(result_path, "rb") as fh:
            kind, value = pickle.load(fh)
    finally:
        try:
            os.unlink(result_path)
        except OSError as exc:
            log.debug("cannot remove %s: %s", result_path, exc)
    if kind == "error":
        raise _RemoteError(value)
    return value


class _RemoteError(Exception):
    """An error raised in a timeout child, carried back as its record."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(record["message"])
        self.record = record


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """True when the child exited within ``timeout`` (it is not reaped here)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # old kernel: poll
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.01)
        return False
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


# ------------------------------------------------------------------------- the wrapper

def run_task(spec: TaskSpec | bytes, *upstream: Envelope) -> Envelope:
    """Run ``spec.task`` on this worker (the function the executor submits); ``spec`` may
    come pickled (see the executor's ``_submit_graph``)."""
    if isinstance(spec, bytes):
        spec = pickle.loads(spec)
    task = spec.task
    worker = _worker_address()
    default_output = _default_output(task)
    by_id = dict(zip(spec.upstream_ids, upstream))
    blocked = next((u for u in upstream if not u.ok), None)
    if blocked is not None:
        why = f"upstream task {blocked.task_id!r} {blocked.meta.get('status', 'failed')}"
        return _finish(spec, Envelope(task.id, False, meta=_meta(spec, "skipped", worker, error=why,
                                                                 fenced=bool(blocked.meta.get("fenced")))))

    cache = _open_cache(spec)
    if cache is not None:
        hit, value = cache.get(spec.cache_key)
        if hit:
            return _finish(spec, Envelope(task.id, True, value.outputs, default_output, _meta(
                spec, "cached", worker, cached=True, metrics=_floats(value.metrics), artifacts=dict(value.artifacts),
                outcome=dict(getattr(value, "outcome", None) or {}))))
    if spec.load_only:
        why = "its cache entry disappeared between planning and loading; run again to recompute it"
        return _finish(spec, Envelope(task.id, False, meta=_meta(spec, "failed", worker, error=why)))

    guard = _guard(spec, worker)
    if guard is not None and not guard.start():
        return _finish(spec, Envelope(task.id, False, meta=_meta(spec, "skipped", worker, error=_FENCED, fenced=True)))
    try:
        return _run_attempts(spec, by_id, cache, worker, default_output, guard)
    finally:
        if guard is not None:
            guard.end()  # after the cache write: whoever waits for this attempt finds its entry


# A refused start says ``fenced``: the run that receives it stops (it is being taken over).
_FENCED = "not started: another instance is taking the execution over (its owner stalled)"


def _guard(spec: TaskSpec, worker: str | None) -> Any:
    if spec.fence is None:
        return None
    from mlflowdsl.runtime.coordination.ownership import AttemptGuard  # noqa: PLC0415 - heavy: redis only in cluster mode

    return AttemptGuard(spec.settings, spec.fence, spec.task.id, worker)


def _run_attempts(spec: TaskSpec, by_id: dict[str, Envelope], cache: Any, worker: str | None,
                  default_output: str, guard: Any) -> Envelope:
    task = spec.task
    started = time.time()
    _publish(spec, {"kind": "started", "task_id": task.id, "time": started, "worker": worker})
    errors: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []  # one entry per attempt (runtime/usage.py)
    attempt = 0
    while True:
        attempt += 1
        try:
            sampler = UsageSampler(attempt=attempt, worker=worker, children=task.timeout is not None)
            if attempt > 1 and guard is not None and not guard.start():
                return _finish(spec, Envelope(task.id, False, meta=_meta(
                    spec, "skipped", worker, attempts=attempt - 1, attempt_errors=errors, started=started,
                    error=_FENCED, fenced=True)))
            try:
                with sampler, logcapture.capture(spec.logs, spec.settings, spec.execution_id, task.id, attempt):
                    outputs = _attempt(spec, by_id, attempt, guard)
            finally:
                if sampler.usage is not None:
                    usage.append(sampler.usage.as_dict())
            break
        except _RemoteError as exc:
            record = {**exc.record, "attempt": attempt}
        except Exception as exc:  # noqa: BLE001 - a task's failure is data, not a crash
            record = _error_record(exc, attempt)
        errors.append(record)
        if not should_retry(task.retry, attempt=attempt, retryable=record["retryable"]):
            return _finish(spec, Envelope(task.id, False, meta=_meta(
                spec, "failed", worker, attempts=attempt, attempt_errors=errors, started=started, usage=usage,
                error=f"{record['type']}: {record['message']}")))
        delay = backoff_delay(task.retry, attempt)
        _publish(spec, {"kind": "retried", "task_id": task.id, "attempt": attempt, "delay_s": delay,
                        "error": f"{record['type']}: {record['message']}", "time": time.time()})
        time.sleep(delay)

    if cache is not None:
        try:
            cache.put(spec.cache_key, outputs, ttl=task.cache.ttl, meta={"task_id": task.id, "task_type": task.type})
        except Exception as exc:  # noqa: BLE001 - a cache write failure must not fail a good result
            errors.append({**_error_record(exc, attempt), "type": f"CacheWriteError:{type(exc).__name__}"})
    return _finish(spec, Envelope(task.id, True, outputs.outputs, default_output, _meta(
        spec, "succeeded", worker, attempts=attempt, attempt_errors=errors, started=started, usage=usage,
        metrics=_floats(outputs.metrics), artifacts=dict(outputs.artifacts), outcome=dict(outputs.outcome))))


def _attempt(spec: TaskSpec, upstream: dict[str, Envelope], attempt: int, guard: Any = None) -> TaskOutputs:
    task = spec.task
    report = None
    if spec.trial is not None:
        report = trial_reporter(spec.trial)
    still_owner = guard.still_owner if guard is not None else None
    # ``services``: the registry, gates and deployments of the run's settings (its home or Redis).
    ctx = TaskContext(task_id=task.id, execution_id=spec.execution_id, attempt=attempt,
                      artifact_dir=os.path.join(str(spec.settings.artifact_path), spec.execution_id),
                      base_dir=spec.base_dir, report=report,
                      services=RegistryServices(spec.settings, still_owner=still_owner), still_owner=still_owner,
                      extra={"settings": spec.settings, "plan_fingerprint": spec.plan_fingerprint or None,
                             # what each upstream output was computed from (its cache key), by task id
                             "input_keys": {tid: env.meta.get("cache_key") for tid, env in upstream.items()}})
    params = {k: resolve_refs(v, upstream) for k, v in task.params.items()}
    if task.timeout is None:
        return invoke(task, params, ctx)
    return run_with_timeout(logcapture.forked(lambda: invoke(task, params, ctx)), task.timeout)


def _default_output(task: Task) -> str:
    if task.type == "custom":
        return "output"
    try:
        return get_task_type(task.type).default_output
    except MlwError:  # an unknown type fails in its attempt, with the message
        return "output"


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics as plain floats (numpy scalars are not msgpack-serializable)."""
    out = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            log.debug("metric %s = %r is not a number: left out", k, v)
    return out


def meta_of(envelope: Envelope) -> dict[str, Any]:
    """A tiny task the client runs when a result's message went missing."""
    return envelope.meta


__all__ = ["Envelope", "TaskSpec", "decode_batch", "invoke", "meta_of", "resolve_refs", "run_task",
           "run_with_timeout"]
