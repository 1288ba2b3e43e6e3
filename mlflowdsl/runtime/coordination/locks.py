"""Token-owned, TTL-bounded distributed locks on Redis.

Lease semantics (read before relying on a lock)
-----------------------------------------------
- A lock is the key ``<prefix>:lock:<name>`` holding the owner's random token, with a TTL of
  ``ttl_s``. Acquiring is ``SET key token NX PX ttl GET``: one round trip, and idempotent
  under retries (if the reply of a successful SET was lost, the retry sees our own token
  and knows it holds the lock).
- The lock is held **at most until its TTL runs out**. A holder that stalls past the TTL (GC
  pause, SIGSTOP, lost network) silently loses it and someone else may enter. Keep critical
  sections well under ``ttl_s``, or pass ``renew=True``: a daemon thread then extends the TTL
  (Lua compare-and-pexpire) every ``ttl_s / 3`` while the lock is held, and marks the lock
  *lost* if the key is no longer ours. For writes that must never come from a stale holder,
  use the leader's fenced writes instead (:mod:`.leader`).
- Release is a Lua compare-and-delete: it never deletes a lock someone else now holds.
  Releasing a lock we no longer own raises :class:`LockLost` (``release(strict=False)``
  returns ``False`` instead): the critical section may have overlapped with another holder,
  and the caller must be told.
- Acquisition waits up to ``timeout_s`` (``None``: forever, ``0``: one try), polling with small
  jittered sleeps (full jitter, growing from ~1 ms to ``max_poll_s``), then raises
  :class:`LockTimeout` naming the lock.
- A lock whose holder dies is free again when its TTL expires.

>>> # with DistributedLock(gateway, "shard-map", ttl_s=5, timeout_s=2):
>>> #     ...  # at most one holder at a time, for at most 5 s
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.coordination.gateway import RedisGateway, RedisUnavailable

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class LockTimeout(MlwError):
    """The lock was not acquired within the timeout (someone else held it all the time)."""


class LockLost(MlwError):
    """We no longer own a lock we thought we held (its TTL ran out, or it was taken over)."""


class DistributedLock:
    """A token-owned Redis lock; a context manager (see the module docstring for semantics).

    Not reentrant, and one instance is meant for one holder at a time (threads that want the
    same lock each create their own ``DistributedLock``).
    """

    def __init__(self, gateway: RedisGateway, name: str, *, ttl_s: float = 10.0, timeout_s: float | None = 5.0,
                 renew: bool = False, token: str | None = None, max_poll_s: float = 0.05):
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.gateway = gateway
        self.name = name
        self.key = gateway.key("lock", name)
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.renew = renew
        self.token = token or os.urandom(16).hex()  # 128 random bits, cheaper than uuid4
        self._token_bytes = self.token.encode()
        self.max_poll_s = max_poll_s
        self._release = gateway.script(_RELEASE)
        self._extend = gateway.script(_EXTEND)
        self._held = False
        self._lost = False
        # Created only for renew=True: a lock cycle should cost two round trips, not threads.
        self._renewer: threading.Thread | None = None
        self._stop_renew: threading.Event | None = None

    # ------------------------------------------------------------------ acquire

    def try_acquire(self) -> bool:
        """One attempt; True if we hold the lock now."""
        key, token, ttl_ms = self.key, self.token, self.ttl_ms
        previous = self.gateway.call(lambda r: r.set(key, token, nx=True, px=ttl_ms, get=True))
        # None: the key was free and is now ours; our own token: a retried SET that had succeeded.
        ok = previous is None or previous == self._token_bytes
        if ok:
            self._held = True
            self._lost = False
            if self.renew:
                self._start_renewer()
        return ok

    def acquire(self, timeout_s: float | None = ...) -> "DistributedLock":  # type: ignore[assignment]
        """Wait until we hold the lock; raises :class:`LockTimeout` after ``timeout_s``."""
        timeout = self.timeout_s if timeout_s is ... else timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while not self.try_acquire():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise LockTimeout(f"lock {self.name!r} not acquired within {timeout:g}s",
                                  subject=self.key, hint="another holder has it; retry later or raise timeout_s")
            # Full jitter keeps contending pollers from retrying in lock-step.
            sleep = random.uniform(0, min(self.max_poll_s, 0.001 * 2 ** attempt))
            if deadline is not None:
                sleep = min(sleep, max(0.0, deadline - now))
            time.sleep(sleep)
            attempt = min(attempt + 1, 16)
        return self

    # ------------------------------------------------------------------ hold

    @property
    def lost(self) -> bool:
        """True when the renewer found the lock taken over (only tracked with ``renew=True``)."""
        return self._lost

    def extend(self, ttl_s: float | None = None) -> bool:
        """Reset the TTL (compare-and-pexpire); False if the lock is no longer ours."""
        ms = self.ttl_ms if ttl_s is None else max(1, int(ttl_s * 1000))
        ok = bool(self._extend(keys=[self.key], args=[self.token, ms]))
        if not ok:
            self._lost = True
        return ok

    def owned(self) -> bool:
        """Whether Redis still has our token under the key (one round trip)."""
        return self.gateway.call(lambda r: r.get(self.key)) == self._token_bytes

    def _start_renewer(self) -> None:
        self._stop_renew = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name=f"mlw-lock-renew-{self.name}")
        self._renewer.start()

    def _renew_loop(self) -> None:
        stop = self._stop_renew
        while stop is not None and not stop.wait(self.ttl_s / 3):
            try:
                if not self.extend():
                    return
            except RedisUnavailable as exc:  # try again next period; the TTL still bounds the damage
                log.debug("lock %s: renew failed: %s", self.name, exc)
                continue

    # ------------------------------------------------------------------ release

    def release(self, *, strict: bool = True) -> bool:
        """Delete the lock if it is still ours. Not ours any more: raise :class:`LockLost`
        (or return False with ``strict=False``)."""
        if self._renewer is not None:
            self._stop_renew.set()
            if self._renewer is not threading.current_thread():
                self._renewer.join(timeout=1.0)
            self._renewer = None
        self._held = False
        released = bool(self._release(keys=[self.key], args=[self.token]))
        if not released and strict:
            raise LockLost(f"lock {self.name!r} was no longer ours at release (TTL {self.ttl_s:g}s ran out "
                           "or it was taken over)", subject=self.key,
                           hint="keep the critical section shorter than ttl_s or use renew=True")
        return released

    def __enter__(self) -> "DistributedLock":
        return self.acquire()

    def __exit__(self, exc_type, exc, tb) -> None:
        # Do not hide the body's own exception behind a LockLost.
        self.release(strict=exc_type is None)

    def __repr__(self) -> str:
        return f"DistributedLock({self.name!r}, held={self._held}, ttl_s={self.ttl_s:g})"
