"""The one place every coordination call to Redis goes through.

:class:`RedisGateway` owns the client, the key prefix, the retry policy and the circuit
breaker, so the rest of the coordination package never talks to redis-py directly:

- **Retries** (tenacity): connection errors and timeouts are retried with exponential backoff
  and *full jitter* (each wait is uniform in ``[0, min(cap, base * 2**attempt)]``), bounded by
  an attempt count and a total delay. redis-py's own retry is switched off so there is exactly
  one retry layer. Other errors (a Lua error, a wrong type) are not retried: they will not go
  away by waiting.
- **Circuit breaker** (pybreaker): every attempt passes through it; after ``fail_max``
  consecutive connection failures it *opens* and calls fail fast (no socket timeouts stacking
  up in every thread) until ``reset_s`` has passed; then it is *half-open*: the next call is a
  trial, and its success closes the breaker. :attr:`breaker_state` is what
  ``mlw cluster status`` shows.
- Whatever cannot be done ends in :class:`RedisUnavailable`, whose message names the URL with
  the password replaced by ``***``.

URLs: ``redis://host:port/db``, ``rediss://`` (TLS; ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_cert_reqs`` in the query string or as keyword arguments),
``redis://user:password@host`` (ACL user) and ``redis://:password@host`` (``requirepass``).

>>> gw = RedisGateway("redis://app:s3cret@localhost:6390/2", prefix="prod")
>>> gw.key("leader", "epoch")
'prod:leader:epoch'
>>> gw.safe_url
'redis://app:***@localhost:6390/2'
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pybreaker
import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.retry import Retry
from tenacity import (
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from mlflowdsl.errors import ConfigError, MlwError

log = logging.getLogger(__name__)

T = TypeVar("T")

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-{}]+(:[A-Za-z0-9_.\-{}]+)*\Z")
_SECRET_QUERY_KEYS = {"password", "ssl_password"}
# Errors that mean "the server is not there (yet)": worth waiting for. AuthenticationError is a
# ConnectionError subclass in redis-py but waiting will not fix a wrong password.
_TRANSIENT = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, ConnectionError, TimeoutError)
_PERMANENT = (rexc.AuthenticationError, rexc.AuthorizationError, rexc.NoPermissionError)


class RedisUnavailable(MlwError):
    """Redis could not be reached (after retries), the breaker is open, or it refused the
    credentials. The subject is the redacted URL."""


@dataclass(frozen=True)
class BackoffPolicy:
    """Retry policy for transient Redis errors: at most ``attempts`` tries and ``max_delay_s``
    in total; waits with full jitter, uniform in ``[0, min(cap_s, base_s * 2**(n-1))]`` before
    retry ``n``.

    >>> BackoffPolicy(base_s=0.1, cap_s=1.0).max_wait(attempt=3)
    0.4
    """

    attempts: int = 4
    base_s: float = 0.05
    cap_s: float = 1.0
    max_delay_s: float = 3.0

    def max_wait(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1))

    def wait_strategy(self) -> wait_random_exponential:
        return wait_random_exponential(multiplier=self.base_s, max=self.cap_s)


def redact_url(url: str) -> str:
    """The URL with its password (and any secret query parameter) replaced by ``***``.

    >>> redact_url("rediss://:hunter2@cache.internal:6380/0?ssl_ca_certs=/ca.pem")
    'rediss://:***@cache.internal:6380/0?ssl_ca_certs=/ca.pem'
    >>> redact_url("redis://localhost:6379")
    'redis://localhost:6379'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable redis url>"
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        user = creds.split(":", 1)[0] if ":" in creds else creds
        netloc = f"{user}:***@{host}" if ":" in creds else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k in _SECRET_QUERY_KEYS else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="/:*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _reraise(exc: BaseException) -> None:
    raise exc


def _is_refusal(exc: BaseException) -> bool:
    """Wrong credentials or an ACL that forbids a command/key (also when raised inside Lua,
    which redis-py reports as a plain ResponseError)."""
    if isinstance(exc, _PERMANENT):
        return True
    text = str(exc)
    return isinstance(exc, rexc.ResponseError) and ("NOPERM" in text or "ACL failure" in text)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT) and not isinstance(exc, _PERMANENT)


class GatewayScript:
    """A registered Lua script bound to a gateway: ``script(keys=[...], args=[...])``.
    redis-py sends EVALSHA and falls back to SCRIPT LOAD on NOSCRIPT (e.g. after a restart)."""

    def __init__(self, gateway: "RedisGateway", source: str):
        self._gateway = gateway
        self._script = gateway.client.register_script(source)
        self.source = source

    def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        return self._gateway.call(lambda r: self._script(keys=list(keys), args=list(args), client=r))


class RedisGateway:
    """A Redis client with a key prefix, retries with jittered backoff and a circuit breaker.

    Thread-safe (redis-py's connection pool and pybreaker's state are). ``call(fn)`` runs
    ``fn(client)`` under the retry policy and the breaker; use it for single commands and
    pipelines alike. ``script(source)`` registers a Lua script once.
    """

    def __init__(self, url: str, *, prefix: str = "mlw", socket_timeout: float = 1.0,
                 connect_timeout: float | None = None, retry: BackoffPolicy = BackoffPolicy(),
                 breaker_fail_max: int = 5, breaker_reset_s: float = 2.0, **ssl_options: Any):
        if not _PREFIX_RE.match(prefix or ""):
            raise ConfigError(f"invalid key prefix {prefix!r}", subject="key_prefix",
                              hint="use letters, digits, '_', '-', '.', ':' (e.g. 'mlw' or 'team-a:mlw')")
        self.url = url
        self.safe_url = redact_url(url)
        self.prefix = prefix
        self.retry_policy = retry
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=breaker_fail_max, reset_timeout=breaker_reset_s,
            # Only outages count; a Lua error or a wrong type is a bug, not a sick server.
            exclude=[lambda exc: not _is_transient(exc)], name=f"redis:{self.safe_url}")
        try:
            self.client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout if connect_timeout is not None else socket_timeout,
                retry=Retry(NoBackoff(), 0),  # tenacity below is the one retry layer
                health_check_interval=0, **ssl_options)
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL {self.safe_url}: {exc}", subject="redis_url",
                              hint="use redis://[user:password@]host[:port][/db] or rediss://...") from None
        self._scripts: dict[str, GatewayScript] = {}
        self._scripts_lock = threading.Lock()

    # ------------------------------------------------------------------ keys and scripts

    def key(self, *parts: object) -> str:
        """``prefix:part1:part2...``; every coordination key is built here."""
        return ":".join([self.prefix, *(str(p) for p in parts)])

    def script(self, source: str) -> GatewayScript:
        """The registered script for ``source`` (one per gateway and source text)."""
        with self._scripts_lock:
            found = self._scripts.get(source)
            if found is None:
                found = self._scripts[source] = GatewayScript(self, source)
            return found

    # ------------------------------------------------------------------ calls

    @property
    def breaker_state(self) -> str:
        """``"closed"`` (normal), ``"open"`` (failing fast) or ``"half-open"`` (next call is a trial)."""
        return str(self._breaker.current_state)

    def call(self, fn: Callable[[redis.Redis], T]) -> T:
        """Run ``fn(client)``; retry transient errors with jittered backoff; raise
        :class:`RedisUnavailable` when Redis stays unreachable or the breaker is open."""
        breaker = self._breaker
        if breaker.current_state == pybreaker.STATE_CLOSED and breaker.fail_counter == 0:
            # Fast path (the common case, and what keeps a lock cycle near two round trips):
            # a healthy breaker has nothing to record on success, so skip its bookkeeping and
            # tenacity's; a failure is handed to the breaker and then retried as usual.
            try:
                return fn(self.client)
            except Exception as exc:
                if _is_refusal(exc):
                    return self._call_with_retries(fn, first_error=exc)  # raises it, worded
                if not _is_transient(exc):
                    raise
                try:
                    breaker.call(_reraise, exc)
                except Exception as recorded:
                    first_error = recorded  # the breaker may have tripped on it
                return self._call_with_retries(fn, first_error=first_error)
        return self._call_with_retries(fn)

    def _call_with_retries(self, fn: Callable[[redis.Redis], T], *, first_error: BaseException | None = None) -> T:
        policy = self.retry_policy
        attempts, wait = policy.attempts, policy.wait_strategy()
        try:
            if first_error is not None:
                # Attempt 1 already failed on the fast path: wait as tenacity would have, then
                # let tenacity run attempts 2..n (its windows shifted by one doubling).
                if attempts <= 1 or not _is_transient(first_error):
                    raise first_error
                log.debug("%s: %s; retrying", self.safe_url, first_error)
                time.sleep(sample_wait(policy, 1))
                attempts -= 1
                wait = wait_random_exponential(multiplier=policy.base_s * 2, max=policy.cap_s)
            retrying = Retrying(
                stop=stop_after_attempt(attempts) | stop_after_delay(policy.max_delay_s),
                wait=wait,
                retry=retry_if_exception(_is_transient),
                reraise=True,
                before_sleep=before_sleep_log(log, logging.DEBUG),
            )
            return retrying(self._breaker.call, fn, self.client)
        except pybreaker.CircuitBreakerError as exc:
            raise RedisUnavailable(
                f"circuit breaker open after repeated failures ({exc})", subject=self.safe_url,
                hint=f"Redis is unreachable; calls fail fast and retry after {self._breaker.reset_timeout:g}s") from None
        except _TRANSIENT as exc:
            if _is_refusal(exc):
                raise self._refused(exc) from None
            raise RedisUnavailable(f"Redis is unreachable: {exc}", subject=self.safe_url,
                                   hint="check that the server is running and the URL is right") from None
        except rexc.RedisError as exc:
            if _is_refusal(exc):
                raise self._refused(exc) from None
            raise

    def _refused(self, exc: BaseException) -> RedisUnavailable:
        return RedisUnavailable(
            f"Redis refused the credentials or command: {exc}", subject=self.safe_url,
            hint=f"check the user/password in the URL and that the ACL user may use keys '{self.prefix}:*' "
                 "and the commands listed in docs/operations.md")

    def ping(self) -> bool:
        return bool(self.call(lambda r: r.ping()))

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"RedisGateway({self.safe_url!r}, prefix={self.prefix!r}, breaker={self.breaker_state})"


def sample_wait(policy: BackoffPolicy, attempt: int) -> float:
    """One wait drawn by the same tenacity strategy :meth:`RedisGateway.call` uses."""
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return policy.wait_strategy()(state)
