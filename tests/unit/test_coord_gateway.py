"""The Redis gateway without a server: URL redaction, prefix checks, backoff bounds, and what a
caller sees when nothing listens (RedisUnavailable naming the redacted URL, breaker opening)."""

from __future__ import annotations

import doctest
import socket
import time

import pytest

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.coordination import gateway as gateway_module
from mlflowdsl.runtime.coordination import config, instances, leader, locks
from mlflowdsl.runtime.coordination.gateway import (
    BackoffPolicy,
    RedisGateway,
    RedisUnavailable,
    redact_url,
    sample_wait,
)


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("module", [gateway_module, config, instances, leader, locks])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("url, expected", [
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("redis://user:pa55@host:6379/3", "redis://user:***@host:6379/3"),
    ("redis://:pa55@host", "redis://:***@host"),
    ("redis://user@host", "redis://user@host"),
    ("rediss://u:p%40ss@h:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_password=x",
     "rediss://u:***@h:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_password=***"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_keys_are_prefixed():
    gw = RedisGateway("redis://localhost:1/0", prefix="team-a:mlw")
    assert gw.key("lock", "x") == "team-a:mlw:lock:x"


@pytest.mark.parametrize("prefix", ["", "has space", "a::b", "trailing:"])
def test_bad_prefix_is_a_config_error(prefix):
    with pytest.raises(ConfigError) as info:
        RedisGateway("redis://localhost:1/0", prefix=prefix)
    assert info.value.subject == "key_prefix"


def test_bad_url_is_a_config_error_without_the_password():
    with pytest.raises(ConfigError) as info:
        RedisGateway("http://user:secret@host/0")
    assert "secret" not in str(info.value)
    assert info.value.subject == "redis_url"


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 6, 10])
def test_backoff_waits_stay_in_the_full_jitter_window(attempt):
    policy = BackoffPolicy(base_s=0.01, cap_s=0.2)
    high = min(0.2, 0.01 * 2 ** (attempt - 1))
    assert policy.max_wait(attempt) == pytest.approx(high)
    waits = [sample_wait(policy, attempt) for _ in range(300)]
    assert all(0.0 <= w <= high for w in waits)
    # Full jitter: the waits spread over the window (not a fixed delay, not clustered at the top).
    assert min(waits) < 0.25 * high and max(waits) > 0.75 * high


def test_unreachable_server_raises_redis_unavailable_naming_the_redacted_url():
    port = closed_port()
    gw = RedisGateway(f"redis://app:topsecret@127.0.0.1:{port}/0", socket_timeout=0.2,
                      retry=BackoffPolicy(attempts=3, base_s=0.01, cap_s=0.02))
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as info:
        gw.ping()
    text = str(info.value)
    assert f"redis://app:***@127.0.0.1:{port}/0" in text
    assert "topsecret" not in text
    assert time.monotonic() - started < 2.0


def test_breaker_opens_after_consecutive_failures_and_fails_fast():
    gw = RedisGateway(f"redis://127.0.0.1:{closed_port()}/0", socket_timeout=0.2,
                      retry=BackoffPolicy(attempts=2, base_s=0.001, cap_s=0.002),
                      breaker_fail_max=3, breaker_reset_s=30)
    assert gw.breaker_state == "closed"
    for _ in range(2):
        with pytest.raises(RedisUnavailable):
            gw.ping()
    assert gw.breaker_state == "open"
    with pytest.raises(RedisUnavailable) as info:
        gw.ping()
    assert "circuit breaker open" in str(info.value)


def test_a_lua_error_is_not_retried_and_does_not_trip_the_breaker():
    calls = []

    def broken(_client):
        calls.append(1)
        raise gateway_module.rexc.ResponseError("ERR user_script:1: boom")

    gw = RedisGateway("redis://127.0.0.1:1/0", breaker_fail_max=1)
    with pytest.raises(gateway_module.rexc.ResponseError):
        gw.call(broken)
    assert len(calls) == 1
    assert gw.breaker_state == "closed"
