"""Who owns an execution: a fencing token per execution, checked where tasks start.

An instance that takes an execution gets a *fencing token* from ``INCR exec:<id>:epoch`` and
owns the execution while the stored value is still that token. A later taker (after a
failover) gets a larger one, so a stalled owner that wakes up finds itself fenced out, with no
clock involved. Taking over is a hand-over in three steps (:func:`claim`):

1. set ``exec:<id>:draining``: from now on no attempt of the execution starts;
2. wait for the attempts that had started to end (each is listed in ``exec:<id>:inflight``,
   task id -> ``token|worker|time``, from its start to its end), unless their worker is gone:
   they finish, and make their side effects, under the token that started them, and their
   results land in the shared cache, so the new owner does not run them again;
3. ``INCR`` the epoch, clear ``draining`` and the list (one script): the previous owner is
   fenced out and the new one starts from what is committed or cached.

On the worker (:class:`AttemptGuard`): :data:`ATTEMPT_START` starts an attempt only if the token
is current and nobody is taking over, and lists it in the same step; :meth:`AttemptGuard.still_owner`
(before a side effect) asks whether the token is still current; :data:`ATTEMPT_END` unlists it.
State writes of an execution are fenced with the same token (``state/redis.py``).

>>> Fence("mlw:exec:abc:epoch", 3).inflight_key
'mlw:exec:abc:inflight'
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from mlflowdsl.runtime.coordination.gateway import RedisGateway, RedisUnavailable

log = logging.getLogger(__name__)

# KEYS: epoch key, inflight hash, draining flag. ARGV: token, task id, marker.
# 1: started (and listed); 0: a newer owner, or a take-over under way.
ATTEMPT_START = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: inflight hash. ARGV: task id, marker. Unlists the attempt only if the entry is its own.
ATTEMPT_END = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

# KEYS: epoch key, inflight hash, draining flag. Returns the new token.
_FINISH_CLAIM = """
local token = redis.call('INCR', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
return token
"""


@dataclass(frozen=True)
class Fence:
    """What a worker needs to check ownership: the full key of the epoch counter and the
    owner's token (small and picklable: it travels in every task spec)."""

    epoch_key: str
    token: int

    def _sibling(self, name: str) -> str:
        return self.epoch_key.rsplit(":", 1)[0] + ":" + name

    @property
    def inflight_key(self) -> str:
        return self._sibling("inflight")

    @property
    def draining_key(self) -> str:
        return self._sibling("draining")


def epoch_key(gateway: RedisGateway, execution_id: str) -> str:
    return gateway.key("exec", execution_id, "epoch")


def current_tokens(gateway: RedisGateway, execution_ids: list[str]) -> dict[str, int]:
    """The current token of each execution (0 when none was ever handed out)."""
    if not execution_ids:
        return {}
    raws = gateway.call(lambda r: r.mget([epoch_key(gateway, e) for e in execution_ids]))
    return {e: int(raw) if raw is not None else 0 for e, raw in zip(execution_ids, raws)}


@dataclass(frozen=True)
class Attempt:
    task_id: str
    token: int
    worker: str
    started: float


def attempts_in_flight(gateway: RedisGateway, execution_id: str) -> list[Attempt]:
    probe = Fence(epoch_key(gateway, execution_id), 0)
    raw = gateway.call(lambda r: r.hgetall(probe.inflight_key))
    return [Attempt(tid.decode(), *_parse_marker(marker.decode())) for tid, marker in raw.items()]


def _parse_marker(marker: str) -> tuple[int, str, float]:
    token, worker, started = (marker.split("|") + ["", ""])[:3]
    try:
        return int(token), worker, float(started or 0)
    except ValueError:
        return 0, worker, 0.0


def claim(gateway: RedisGateway, execution_id: str, live_workers: Callable[[], set[str]], *,
          give_up: Callable[[], bool] = lambda: False, poll_s: float = 0.1,
          max_wait_s: float = 3600.0) -> tuple[Fence, list[str]]:
    """Take ``execution_id`` over (see the module docstring); returns our fence and the task
    ids of the previous owner's attempts we waited for. ``give_up`` (a cancel) or
    ``max_wait_s`` end the wait early (those attempts may then overlap ours)."""
    probe = Fence(epoch_key(gateway, execution_id), 0)
    gateway.call(lambda r: r.set(probe.draining_key, "1"))
    waited: set[str] = set()
    deadline = time.monotonic() + max_wait_s
    while not give_up():
        running = attempts_in_flight(gateway, execution_id)
        if running:
            alive = live_workers()
            running = [a for a in running if a.worker in alive]
        if not running:
            break
        if time.monotonic() > deadline:
            log.warning("execution %s: %d attempt(s) of the previous owner still running after %gs; going on",
                        execution_id, len(running), max_wait_s)
            break
        if not waited:
            log.info("execution %s: waiting for %d attempt(s) the previous owner started: %s", execution_id,
                     len(running), ", ".join(sorted(a.task_id for a in running)))
        waited.update(a.task_id for a in running)
        time.sleep(poll_s)
    finish = gateway.script(_FINISH_CLAIM)
    token = int(finish(keys=[probe.epoch_key, probe.inflight_key, probe.draining_key], args=[]))
    return Fence(probe.epoch_key, token), sorted(waited)


# ------------------------------------------------------------------ the worker's side

_gateways: dict[tuple[str, str], tuple[RedisGateway, Any, Any]] = {}
_gateways_lock = threading.Lock()


def _worker_gateway(settings: Any) -> tuple[RedisGateway, Any, Any]:
    """One gateway (and the two scripts) per worker process and Redis."""
    from mlflowdsl.runtime.coordination.config import gateway_from_settings  # noqa: PLC0415 - heavy: redis only in cluster mode

    key = (settings.redis_url, settings.key_prefix)
    with _gateways_lock:
        entry = _gateways.get(key)
        if entry is None:
            gw = gateway_from_settings(settings)
            entry = _gateways[key] = (gw, gw.script(ATTEMPT_START), gw.script(ATTEMPT_END))
        return entry


class AttemptGuard:
    """The worker's view of one task's fence: :meth:`start` before an attempt (False: the
    execution has a newer owner, do not run), :meth:`still_owner` before a side effect,
    :meth:`end` after the attempt. While Redis cannot be reached the answer waits for it (up
    to ``wait_s``), then counts as "not the owner": a side effect is never made unconfirmed."""

    def __init__(self, settings: Any, fence: Fence, task_id: str, worker: str | None, *, wait_s: float = 30.0):
        self.settings = settings
        self.fence = fence
        self.task_id = task_id
        self.marker = f"{fence.token}|{worker or ''}|{time.time():.3f}"
        self.wait_s = wait_s
        self._started = False

    def _call(self, what: Callable[[RedisGateway, Any, Any], Any]) -> Any:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                return what(*_worker_gateway(self.settings))
            except RedisUnavailable as exc:
                if time.monotonic() >= deadline:
                    log.warning("task %s: ownership cannot be checked (%s); not going on", self.task_id, exc)
                    return None
                time.sleep(0.2)

    def start(self) -> bool:
        f = self.fence
        ok = self._call(lambda gw, start, end: start(keys=[f.epoch_key, f.inflight_key, f.draining_key],
                                                     args=[str(f.token), self.task_id, self.marker]))
        self._started = bool(ok)
        return self._started

    def still_owner(self) -> bool:
        f = self.fence
        raw = self._call(lambda gw, start, end: gw.call(lambda r: r.get(f.epoch_key)))
        return raw is not None and raw.decode() == str(f.token)

    def end(self) -> None:
        if not self._started:
            return
        f = self.fence
        self._started = False
        self._call(lambda gw, start, end: end(keys=[f.inflight_key], args=[self.task_id, self.marker]))
