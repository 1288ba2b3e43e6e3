"""Coordination settings, checked once: bad values become a ConfigError naming the setting
(and its environment variable), never a traceback from deep inside a thread.

>>> from mlflowdsl.settings import Settings
>>> coordination_config(Settings(leader_lease_s=1.0, leader_renew_s=0.25)).lease_s
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.coordination.gateway import BackoffPolicy, RedisGateway
from mlflowdsl.settings import ENV

STEP_DOWN_RATIO = 0.7  # the leader stops acting after this fraction of the lease without a renew


@dataclass(frozen=True)
class CoordinationConfig:
    lease_s: float = 3.0
    renew_s: float = 1.0
    heartbeat_s: float = 1.0
    timeout_s: float = 1.0
    retry: BackoffPolicy = BackoffPolicy()
    breaker_failures: int = 5
    breaker_reset_s: float = 2.0


def _setting(name: str) -> str:
    return f"{name} ({ENV[name]})" if name in ENV else name


def coordination_config(settings: Any) -> CoordinationConfig:
    """The checked coordination settings of ``settings`` (a :class:`mlflowdsl.settings.Settings`)."""
    lease = float(getattr(settings, "leader_lease_s", 3.0))
    renew = float(getattr(settings, "leader_renew_s", 1.0))
    positive = {name: float(getattr(settings, name, 1.0)) for name in (
        "leader_lease_s", "leader_renew_s", "heartbeat_s", "redis_timeout_s", "redis_retry_max_s",
        "redis_breaker_reset_s", "redis_retry_attempts", "redis_breaker_failures")}
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"must be positive, got {value:g}", subject=_setting(name))
    if renew >= STEP_DOWN_RATIO * lease:
        raise ConfigError(f"renew period {renew:g}s must be shorter than {STEP_DOWN_RATIO} x the lease "
                          f"({STEP_DOWN_RATIO * lease:g}s), or the leader steps down between renewals",
                          subject=_setting("leader_renew_s"), hint=f"e.g. leader_renew_s = {lease / 3:g}")
    return CoordinationConfig(
        lease_s=lease, renew_s=renew, heartbeat_s=positive["heartbeat_s"], timeout_s=positive["redis_timeout_s"],
        retry=BackoffPolicy(attempts=int(positive["redis_retry_attempts"]), max_delay_s=positive["redis_retry_max_s"]),
        breaker_failures=int(positive["redis_breaker_failures"]), breaker_reset_s=positive["redis_breaker_reset_s"])


def gateway_from_settings(settings: Any, **overrides: Any) -> RedisGateway:
    """A gateway for ``settings.redis_url`` under ``settings.key_prefix``, with the retry,
    timeout and breaker settings applied (``overrides`` win)."""
    if not getattr(settings, "redis_url", None):
        raise ConfigError("no Redis URL configured", subject="redis_url",
                          hint="pass --redis URL or set MLW_REDIS_URL (redis://host:6379/0)")
    config = coordination_config(settings)
    options: dict[str, Any] = {"prefix": getattr(settings, "key_prefix", "mlw") or "mlw",
                               "socket_timeout": config.timeout_s, "retry": config.retry,
                               "breaker_fail_max": config.breaker_failures, "breaker_reset_s": config.breaker_reset_s}
    options.update(overrides)
    return RedisGateway(settings.redis_url, **options)
