"""Leader election by a lease in Redis, with fencing tokens.

Keys (under the gateway prefix): ``leader`` holds ``"<instance_id>:<epoch>"`` with a PX
expiry; ``leader:epoch`` is the fencing-token counter; ``leader:log`` is a capped stream of
every accepted leader write (epoch, instance, key, op), kept so tests and operators can check
that tokens never go backwards.

Lease semantics
---------------
- :meth:`LeaderLease.try_acquire` is ONE Lua script: if the lease key is free it INCRs the epoch
  counter and SETs the lease with PX ``lease_s``; the new epoch is the fencing token. (If the
  key already holds *our own* value, e.g. a retried call whose first reply was lost, the held
  epoch is returned, so a retry never bumps the token twice.)
- :meth:`LeaderLease.renew` is a Lua compare-and-pexpire on the exact ``id:epoch`` value.
- The leader **steps down by itself**: :attr:`LeaderLease.is_leader` is true only while the
  last successful acquire/renew *started* less than ``step_down_ratio * lease_s`` ago on this
  process's own ``time.monotonic()`` clock. Measuring from the moment the request was sent
  (not when the reply came) keeps the estimate conservative: the server's expiry started no
  earlier than that. With a 3 s lease and ratio 0.7 a leader stops acting 0.9 s before any other
  instance can possibly acquire, which absorbs clock-rate drift and GC/scheduling stalls.
- A stall longer than that (SIGSTOP, a VM pause) is what **fencing** covers: every write only
  a leader may make goes through a ``fenced_*`` method that carries the writer's epoch, and
  Lua rejects it when the stored epoch counter is greater (a newer leader exists). Rejected
  writes change nothing and return ``False`` (or raise :class:`FencingRejected` with
  ``strict=True``).

The fencing guarantee assumes Redis does not lose the epoch counter (persistence on, see
docs/operations.md): a Redis that restarts empty starts the counter again at 1.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.coordination.gateway import RedisGateway, RedisUnavailable

log = logging.getLogger(__name__)

LOG_MAXLEN = 10_000  # accepted-writes log cap (approximate trimming)

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder, epoch = string.match(cur, '^(.*):(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(epoch)
  end
  return false
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
return epoch
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: epoch counter, log stream, target. ARGV: epoch, instance, op, log maxlen, op args...
_FENCED = """
local epoch = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > epoch then return 0 end
local op = ARGV[3]
if op == 'set' then
  redis.call('SET', KEYS[3], ARGV[5])
elseif op == 'hset' then
  redis.call('HSET', KEYS[3], unpack(ARGV, 5))
elseif op == 'xadd' then
  redis.call('XADD', KEYS[3], '*', 'epoch', ARGV[1], unpack(ARGV, 5))
elseif op == 'del' then
  redis.call('DEL', KEYS[3])
else
  return redis.error_reply('unknown fenced op ' .. op)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'epoch', ARGV[1], 'instance', ARGV[2], 'key', KEYS[3], 'op', op)
return 1
"""


class FencingRejected(MlwError):
    """A leader-only write carried an epoch older than the stored one: a newer leader exists."""


class LeaderLease:
    """One instance's view of the leader lease (see the module docstring for the semantics).

    Not a thread by itself: :class:`LeaderElector` drives it. Methods raise
    :class:`RedisUnavailable` when Redis cannot be reached (``renew`` counts that as a failed
    renewal and returns ``False``).
    """

    def __init__(self, gateway: RedisGateway, instance_id: str, *, lease_s: float = 3.0, renew_s: float = 1.0,
                 step_down_ratio: float = 0.7):
        if not 0 < step_down_ratio < 1:
            raise ValueError("step_down_ratio must be in (0, 1)")
        if renew_s >= lease_s * step_down_ratio:
            raise ValueError(f"renew_s ({renew_s}) must be shorter than step_down_ratio * lease_s "
                             f"({lease_s * step_down_ratio:g}) or the leader steps down between renewals")
        if ":" in instance_id and instance_id.rsplit(":", 1)[1].isdigit():
            raise ValueError(f"instance id {instance_id!r} must not end in ':<digits>'")
        self.gateway = gateway
        self.instance_id = instance_id
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.step_down_ratio = step_down_ratio
        self.lease_key = gateway.key("leader")
        self.epoch_key = gateway.key("leader", "epoch")
        self.log_key = gateway.key("leader", "log")
        self._acquire = gateway.script(_ACQUIRE)
        self._renew = gateway.script(_RENEW)
        self._release = gateway.script(_RELEASE)
        self._fenced = gateway.script(_FENCED)
        self._epoch: int | None = None
        self._valid_since: float | None = None  # monotonic start of the last successful acquire/renew

    # ------------------------------------------------------------------ lease

    @property
    def epoch(self) -> int | None:
        """The fencing token of the lease we hold (or last held); ``None`` before the first win."""
        return self._epoch

    @property
    def is_leader(self) -> bool:
        """True only while our last successful acquire/renew is younger than
        ``step_down_ratio * lease_s`` on our own monotonic clock."""
        since = self._valid_since
        return since is not None and time.monotonic() - since < self.step_down_ratio * self.lease_s

    @property
    def _value(self) -> str:
        return f"{self.instance_id}:{self._epoch}"

    def try_acquire(self) -> int | None:
        """Take the lease if it is free; returns the new epoch, or ``None`` if someone holds it."""
        started = time.monotonic()
        epoch = self._acquire(keys=[self.lease_key, self.epoch_key],
                              args=[self.instance_id, int(self.lease_s * 1000)])
        if epoch is None:
            return None
        self._epoch = int(epoch)
        self._valid_since = started
        return self._epoch

    def renew(self) -> bool:
        """Extend our lease (compare-and-pexpire). ``False`` if it is no longer ours or Redis
        is unreachable; :attr:`is_leader` then runs out on its own."""
        if self._epoch is None:
            return False
        started = time.monotonic()
        try:
            ok = self._renew(keys=[self.lease_key], args=[self._value, int(self.lease_s * 1000)])
        except RedisUnavailable as exc:
            log.warning("lease renew failed: %s", exc)
            return False
        if ok:
            self._valid_since = started
            return True
        self._valid_since = None  # someone else holds it: stop acting now, not at the deadline
        return False

    def release(self) -> bool:
        """Give the lease up if it is still ours (compare-and-delete); never deletes another's."""
        self._valid_since = None
        if self._epoch is None:
            return False
        return bool(self._release(keys=[self.lease_key], args=[self._value]))

    def current_holder(self) -> tuple[str, int] | None:
        """``(instance_id, epoch)`` of whoever holds the lease now, or ``None``."""
        raw = self.gateway.call(lambda r: r.get(self.lease_key))
        if raw is None:
            return None
        holder, _, epoch = raw.decode().rpartition(":")
        return holder, int(epoch)

    # ------------------------------------------------------------------ fenced writes

    def _fenced_write(self, op: str, key: str, args: list, epoch: int | None, strict: bool) -> bool:
        token = self._epoch if epoch is None else epoch
        if token is None:
            raise FencingRejected("no epoch: this instance never was leader", subject=key)
        accepted = bool(self._fenced(
            keys=[self.epoch_key, self.log_key, key],
            args=[token, self.instance_id, op, LOG_MAXLEN, *args]))
        if not accepted and strict:
            raise FencingRejected(f"write with epoch {token} rejected: a newer leader exists", subject=key)
        return accepted

    def fenced_set(self, key: str, value: str | bytes, epoch: int | None = None, *, strict: bool = False) -> bool:
        """SET ``key`` unless a newer epoch exists. ``epoch`` defaults to the one we hold."""
        return self._fenced_write("set", key, [value], epoch, strict)

    def fenced_hset(self, key: str, mapping: dict, epoch: int | None = None, *, strict: bool = False) -> bool:
        """HSET ``key`` with ``mapping`` unless a newer epoch exists."""
        flat = [item for pair in mapping.items() for item in pair]
        return self._fenced_write("hset", key, flat, epoch, strict)

    def fenced_xadd(self, key: str, fields: dict, epoch: int | None = None, *, strict: bool = False) -> bool:
        """XADD to stream ``key`` (an ``epoch`` field is added) unless a newer epoch exists."""
        flat = [item for pair in fields.items() for item in pair]
        return self._fenced_write("xadd", key, flat, epoch, strict)

    def fenced_delete(self, key: str, epoch: int | None = None, *, strict: bool = False) -> bool:
        return self._fenced_write("del", key, [], epoch, strict)

    def accepted_epochs(self, count: int = LOG_MAXLEN) -> list[int]:
        """Epochs of the accepted leader writes, oldest first (from the capped log)."""
        entries = self.gateway.call(lambda r: r.xrange(self.log_key, count=count))
        return [int(fields[b"epoch"]) for _, fields in entries]


class LeaderElector:
    """A daemon thread that keeps trying to be leader: every ``lease.renew_s`` it renews the
    lease it holds or tries to acquire a free one, and calls ``on_elected(epoch)`` /
    ``on_lost(epoch)`` on transitions (from this thread; keep them short).

    "Lost" is reported as soon as :attr:`LeaderLease.is_leader` turns false, whether the renew
    was refused or Redis was unreachable. :meth:`stop` ends the thread and releases the lease.
    """

    def __init__(self, lease: LeaderLease, on_elected: Callable[[int], None] | None = None,
                 on_lost: Callable[[int], None] | None = None, *, name: str | None = None):
        self.lease = lease
        self.on_elected = on_elected or (lambda epoch: None)
        self.on_lost = on_lost or (lambda epoch: None)
        self._stop = threading.Event()
        self._leading = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name or f"mlw-elector-{lease.instance_id}")

    @property
    def is_leader(self) -> bool:
        return self.lease.is_leader

    def start(self) -> "LeaderElector":
        self._thread.start()
        return self

    def _tick(self) -> None:
        lease = self.lease
        if self._leading:
            lease.renew()
            if not lease.is_leader:
                self._leading = False
                self.on_lost(lease.epoch or 0)
                # Fall through: the lease may be free already (e.g. Redis restarted empty).
        if not self._leading:
            try:
                epoch = lease.try_acquire()
            except RedisUnavailable as exc:
                log.debug("lease acquire failed: %s", exc)
                return
            if epoch is not None and lease.is_leader:
                self._leading = True
                self.on_elected(epoch)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._tick()
            except Exception:  # a bug in a callback must not kill the elector silently
                log.exception("leader elector tick failed")
            self._stop.wait(max(0.0, self.lease.renew_s - (time.monotonic() - started)))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        was_leading, self._leading = self._leading, False
        try:
            self.lease.release()
        except RedisUnavailable:
            pass  # the lease expires on its own
        if was_leading:
            self.on_lost(self.lease.epoch or 0)
