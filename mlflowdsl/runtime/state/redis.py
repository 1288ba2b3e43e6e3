"""Redis state for cluster mode: the same records as SQLite, shared by every instance.

Every write is a compare-and-set in one Lua script, so no interleaving of instances can move a
record backwards:

- statuses rank ``pending < running < terminal`` (every terminal status ranks the same); a
  write of a lower rank is rejected, a write of the same non-terminal rank updates the record;
- a terminal status never changes: the first terminal write of a task in an execution is its
  *commit*, and any later write of that task (a rerun after a failover, a stale instance) is
  rejected and reported as ``False`` by :meth:`RedisState.commit_task_results`;
- an execution header follows the same rule (a finished execution stays finished).

In cluster mode the writes of an execution are also *fenced* (:meth:`RedisState.fence`): they
carry the owner's token and the script rejects them, writing nothing, once ``exec:<id>:epoch``
holds a newer one (another instance took the execution over; ``coordination/ownership.py``).

Keys (under the gateway prefix): ``exec:<id>`` hash (``header`` JSON, ``status``, ``plan``),
``exec:<id>:tasks`` hash (task id -> result JSON), ``exec:<id>:tstatus`` hash (task id ->
status), ``execs`` sorted set (ids by creation time), ``computed:<cache key>`` (the execution
and task that last computed that cache entry, for :meth:`computed_results`), and the attempt
logs: ``exec:<id>:log:<task>:<attempt>`` (the last bytes, trimmed by :data:`_APPEND_LOG`) and
``exec:<id>:logs`` hash (``<task>\x1f<attempt>`` -> bytes written in all).

Redis outages: writes that fail with :class:`RedisUnavailable` are kept in a buffer and
retried on the next write or :meth:`RedisState.flush_pending`; a run keeps going meanwhile.
An instance acknowledges an execution only once :attr:`RedisState.unsaved` is zero.

>>> _rank("pending"), _rank("running"), _rank("cached")
(0, 1, 2)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable

from mlflowdsl.errors import StateError
from mlflowdsl.runtime.coordination.config import gateway_from_settings
from mlflowdsl.runtime.coordination.gateway import RedisGateway, RedisUnavailable
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.base import AttemptLog, StateBackend

log = logging.getLogger(__name__)

_RANKS = {"pending": 0, "running": 1}


def _rank(status: str) -> int:
    return _RANKS.get(status, 2)


# KEYS: tasks hash, status hash, epoch key (see coordination/ownership.py). ARGV: n, the writer's
# fencing token or '' (unfenced), then n x (task id, rank, status, body, computed key or '',
# computed value). Returns one 1/0 per task: accepted or rejected; {-1}: fenced out (nothing written).
_COMMIT_TASKS = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[2] then return {-1} end
local out = {}
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local base = 3 + i * 6
  local tid, rank, status, body = ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3]
  local cur = redis.call('HGET', KEYS[2], tid)
  local ok = 1
  if cur then
    local cur_rank = 2
    if cur == 'pending' then cur_rank = 0 elseif cur == 'running' then cur_rank = 1 end
    if cur_rank == 2 or rank < cur_rank then ok = 0 end
  end
  if ok == 1 then
    redis.call('HSET', KEYS[1], tid, body)
    redis.call('HSET', KEYS[2], tid, status)
    if ARGV[base + 4] ~= '' then redis.call('SET', ARGV[base + 4], ARGV[base + 5]) end
  end
  out[i + 1] = ok
end
return out
"""

# KEYS: exec hash, index zset, epoch key. ARGV: id, rank, status, header, plan, created, the
# writer's fencing token or ''. Returns 1 (written), 0 (rejected), -1 (fenced out).
_SAVE_EXECUTION = """
if ARGV[7] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[7] then return -1 end
local cur = redis.call('HGET', KEYS[1], 'status')
if cur then
  local cur_rank = 2
  if cur == 'pending' then cur_rank = 0 elseif cur == 'running' then cur_rank = 1 end
  local rank = tonumber(ARGV[2])
  if cur_rank == 2 or rank < cur_rank then return 0 end
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'header', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'plan', ARGV[5]) end
redis.call('ZADD', KEYS[2], 'NX', ARGV[6], ARGV[1])
return 1
"""


# KEYS: log key, index hash. ARGV: data, limit, index field, dropped. Appends, keeps the tail.
_APPEND_LOG = """
local n = redis.call('APPEND', KEYS[1], ARGV[1])
local limit = tonumber(ARGV[2])
if n > limit then
  redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], n - limit, -1))
end
redis.call('HINCRBY', KEYS[2], ARGV[3], string.len(ARGV[1]) + tonumber(ARGV[4]))
return n
"""


class RedisState(StateBackend):
    """Execution records in Redis; see the module docstring for the write rules."""

    def __init__(self, gateway: RedisGateway):
        self.gateway = gateway
        self._commit = gateway.script(_COMMIT_TASKS)
        self._save = gateway.script(_SAVE_EXECUTION)
        self._append_log = gateway.script(_APPEND_LOG)
        self._lock = threading.Lock()
        # Unsaved writes while Redis is unreachable: header per execution, results per task.
        self._pending_headers: dict[str, WorkflowExecution] = {}
        self._pending_results: dict[str, dict[str, TaskResult]] = {}
        # Fencing (cluster mode): execution id -> this writer's token; executions whose token
        # was found superseded (every later write of theirs is dropped).
        self._tokens: dict[str, int] = {}
        self._fenced_out: set[str] = set()

    @classmethod
    def from_settings(cls, settings) -> RedisState:
        return cls(gateway_from_settings(settings))

    # ------------------------------------------------------------------ keys

    def _exec_key(self, execution_id: str, *parts: str) -> str:
        return self.gateway.key("exec", execution_id, *parts)

    @property
    def index_key(self) -> str:
        return self.gateway.key("execs")

    # ------------------------------------------------------------------ fencing

    def fence(self, execution_id: str, token: int) -> None:
        """Write ``execution_id``'s records only while ``exec:<id>:epoch`` is ``token``
        (``coordination.ownership.claim`` handed it out); a rejected write marks the execution
        :meth:`fenced_out` and drops its buffered writes."""
        with self._lock:
            self._tokens[execution_id] = token
            self._fenced_out.discard(execution_id)

    def unfence(self, execution_id: str) -> None:
        with self._lock:
            self._tokens.pop(execution_id, None)
            self._fenced_out.discard(execution_id)
            self._pending_headers.pop(execution_id, None)
            self._pending_results.pop(execution_id, None)

    def fenced_out(self, execution_id: str) -> bool:
        """True once a write of ``execution_id`` was rejected because another owner took it."""
        return execution_id in self._fenced_out

    def _token(self, execution_id: str) -> str:
        token = self._tokens.get(execution_id)
        return "" if token is None else str(token)

    def _mark_fenced_out(self, execution_id: str) -> None:
        with self._lock:
            if execution_id not in self._tokens or execution_id in self._fenced_out:
                return
            self._fenced_out.add(execution_id)
            self._pending_headers.pop(execution_id, None)
            self._pending_results.pop(execution_id, None)
        log.warning("execution %s has a newer owner: this instance's writes of it are rejected", execution_id)

    # ------------------------------------------------------------------ writes

    def save_execution(self, execution: WorkflowExecution) -> None:
        with self._lock:
            self._pending_headers[execution.id] = execution
        self.flush_pending()

    def save_execution_checked(self, execution: WorkflowExecution) -> bool:
        """Write the header now (no buffering); False when the compare-and-set rejected it."""
        if execution.id in self._fenced_out:
            return False
        header = execution.model_dump(mode="json", exclude={"tasks", "plan_json"})
        done = int(self._save(
            keys=[self._exec_key(execution.id), self.index_key, self._exec_key(execution.id, "epoch")],
            args=[execution.id, _rank(execution.status), execution.status, json.dumps(header),
                  execution.plan_json, execution.created, self._token(execution.id)]))
        if done < 0:
            self._mark_fenced_out(execution.id)
        return done > 0

    def save_task_results(self, execution_id: str, results: Iterable[TaskResult]) -> None:
        with self._lock:
            buffered = self._pending_results.setdefault(execution_id, {})
            for r in results:
                old = buffered.get(r.task_id)
                # Keep the furthest-along record: a buffered commit must not be replaced by an
                # older status that arrived later.
                if old is None or _rank(r.status) >= _rank(old.status):
                    buffered[r.task_id] = r
        self.flush_pending()

    def commit_task_results(self, execution_id: str, results: Iterable[TaskResult]) -> list[bool]:
        """Write now (no buffering): one flag per result, False where the compare-and-set
        rejected it (a lower status, or the task was already committed)."""
        results = list(results)
        if not results:
            return []
        if execution_id in self._fenced_out:
            return [False] * len(results)
        args: list = [len(results), self._token(execution_id)]
        for r in results:
            computed_key, computed = "", ""
            if r.status == "succeeded" and r.cache_key:
                computed_key = self.gateway.key("computed", r.cache_key)
                computed = json.dumps([execution_id, r.task_id])
            args += [r.task_id, _rank(r.status), r.status, r.model_dump_json(), computed_key, computed]
        flags = self._commit(keys=[self._exec_key(execution_id, "tasks"), self._exec_key(execution_id, "tstatus"),
                                   self._exec_key(execution_id, "epoch")], args=args)
        if flags and int(flags[0]) < 0:
            self._mark_fenced_out(execution_id)
            return [False] * len(results)
        return [bool(f) for f in flags]

    def flush_pending(self) -> bool:
        """Try to write every buffered record; True when nothing is left unsaved."""
        with self._lock:
            headers = dict(self._pending_headers)
            results = {e: dict(rs) for e, rs in self._pending_results.items() if rs}
        try:
            # Results first: a header saying "succeeded" must not land before the task results.
            for execution_id, by_task in results.items():
                self.commit_task_results(execution_id, by_task.values())
                with self._lock:
                    still = self._pending_results.get(execution_id, {})
                    for tid, r in by_task.items():
                        if still.get(tid) is r:
                            del still[tid]
            for execution_id, execution in headers.items():
                self.save_execution_checked(execution)
                with self._lock:
                    if self._pending_headers.get(execution_id) is execution:
                        del self._pending_headers[execution_id]
        except RedisUnavailable as exc:
            log.warning("state write deferred (%d unsaved): %s", self.unsaved, exc)
            return False
        return self.unsaved == 0

    @property
    def unsaved(self) -> int:
        with self._lock:
            return len(self._pending_headers) + sum(len(rs) for rs in self._pending_results.values())

    # ------------------------------------------------------------------ reads

    def _resolve_id(self, execution_id: str) -> str:
        if self.gateway.call(lambda r: r.exists(self._exec_key(execution_id))):
            return execution_id
        # A prefix, like git's short hashes: scan the index (ids only, one round trip).
        ids_all = [i.decode() for i in self.gateway.call(lambda r: r.zrange(self.index_key, 0, -1))]
        matches = [i for i in ids_all if i.startswith(execution_id)]
        ids = sorted(set(matches))
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise StateError(f"no execution {execution_id!r}", subject=self.gateway.safe_url,
                             hint="`mlw status --redis URL` lists the known executions")
        raise StateError(f"execution id prefix {execution_id!r} is ambiguous", subject=self.gateway.safe_url,
                         hint="give more characters of the id")

    def get_execution(self, execution_id: str) -> WorkflowExecution:
        full_id = self._resolve_id(execution_id)

        def read(r):
            pipe = r.pipeline()
            pipe.hmget(self._exec_key(full_id), ["header", "plan"])
            pipe.hgetall(self._exec_key(full_id, "tasks"))
            return pipe.execute()

        (header, plan), tasks = self.gateway.call(read)
        if header is None:
            raise StateError(f"no execution {execution_id!r}", subject=self.gateway.safe_url)
        results = {k.decode(): TaskResult.model_validate_json(v) for k, v in tasks.items()}
        data = json.loads(header)
        order = _task_order(plan)
        ordered = {t: results[t] for t in order if t in results}
        ordered.update({t: r for t, r in results.items() if t not in ordered})
        return WorkflowExecution.model_validate({**data, "plan_json": (plan or b"").decode(), "tasks": ordered})

    def list_executions(self, *, limit: int = 20, workflow_id: str | None = None) -> list[WorkflowExecution]:
        ids = [i.decode() for i in self.gateway.call(lambda r: r.zrevrange(self.index_key, 0, -1))]
        out: list[WorkflowExecution] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start:start + 200]

            def read(r, chunk=chunk):
                pipe = r.pipeline()
                for i in chunk:
                    pipe.hget(self._exec_key(i), "header")
                return pipe.execute()

            for header in self.gateway.call(read):
                if header is None:
                    continue
                execution = WorkflowExecution.model_validate(json.loads(header))
                if workflow_id is None or execution.workflow_id == workflow_id:
                    out.append(execution)
                if len(out) >= limit:
                    return out
        return out

    def computed_results(self, cache_keys: Iterable[str]) -> dict[str, TaskResult]:
        keys = list(dict.fromkeys(cache_keys))
        if not keys:
            return {}
        raws = self.gateway.call(lambda r: r.mget([self.gateway.key("computed", k) for k in keys]))
        origins = [(key, json.loads(raw)) for key, raw in zip(keys, raws) if raw is not None]

        def read(r):
            pipe = r.pipeline()
            for _, (execution_id, task_id) in origins:
                pipe.hget(self._exec_key(execution_id, "tasks"), task_id)
            return pipe.execute()

        bodies = self.gateway.call(read) if origins else []
        return {key: TaskResult.model_validate_json(body)
                for (key, _), body in zip(origins, bodies) if body is not None}

    def task_statuses(self, execution_id: str) -> tuple[str, dict[str, tuple[str, int]]]:
        full_id = self._resolve_id(execution_id)

        def read(r):
            pipe = r.pipeline()
            pipe.hget(self._exec_key(full_id), "status")
            pipe.hgetall(self._exec_key(full_id, "tstatus"))
            return pipe.execute()

        status, tasks = self.gateway.call(read)
        return (status or b"pending").decode(), {k.decode(): (v.decode(), 0) for k, v in tasks.items()}

    # ------------------------------------------------------------------ attempt logs

    def log_target(self) -> dict:
        return {"kind": "redis"}  # the worker connects with the run's settings

    def append_attempt_log(self, execution_id: str, task_id: str, attempt: int, data: bytes, *,
                           limit: int, dropped: int = 0) -> None:
        self._append_log(keys=[self._exec_key(execution_id, "log", task_id, str(attempt)),
                               self._exec_key(execution_id, "logs")],
                         args=[data, limit, f"{task_id}\x1f{attempt}", dropped])

    def attempt_logs(self, execution_id: str, task_id: str | None = None,
                     attempt: int | None = None) -> list[AttemptLog]:
        full_id = self._resolve_id(execution_id)
        index = self.gateway.call(lambda r: r.hgetall(self._exec_key(full_id, "logs")))
        wanted = []
        for field, total in index.items():
            tid, _, number = field.decode().rpartition("\x1f")
            if (task_id is None or tid == task_id) and (attempt is None or int(number) == attempt):
                wanted.append((tid, int(number), int(total)))

        def read(r):
            pipe = r.pipeline()
            for tid, number, _ in wanted:
                pipe.get(self._exec_key(full_id, "log", tid, str(number)))
            return pipe.execute()

        bodies = self.gateway.call(read) if wanted else []
        plan = self.gateway.call(lambda r: r.hget(self._exec_key(full_id), "plan"))
        order = {t: i for i, t in enumerate(_task_order(plan))}
        logs = [AttemptLog(tid, number, (body or b"").decode("utf-8", "replace"), total)
                for (tid, number, total), body in zip(wanted, bodies)]
        return sorted(logs, key=lambda g: (order.get(g.task_id, len(order)), g.task_id, g.attempt))

    def close(self) -> None:
        self.flush_pending()


def _task_order(plan: bytes | None) -> list[str]:
    """Task ids in the plan's order (results come back from a hash in no order)."""
    if not plan:
        return []
    try:
        return [t["id"] for t in json.loads(plan).get("tasks", [])]
    except (ValueError, KeyError, TypeError):
        return []
