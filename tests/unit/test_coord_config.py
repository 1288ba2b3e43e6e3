"""Coordination settings: environment parsing, checks naming the setting, gateway wiring."""

from __future__ import annotations

import pytest

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.coordination import coordination_config, gateway_from_settings
from mlflowdsl.settings import Settings, load_settings


def test_defaults_match_the_issue():
    config = coordination_config(Settings())
    assert (config.lease_s, config.renew_s, config.heartbeat_s) == (3.0, 1.0, 1.0)


def test_environment_sets_the_periods(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLW_LEADER_LEASE_S", "1.5")
    monkeypatch.setenv("MLW_LEADER_RENEW_S", "0.3")
    monkeypatch.setenv("MLW_REDIS_RETRY_ATTEMPTS", "7")
    config = coordination_config(load_settings())
    assert (config.lease_s, config.renew_s, config.retry.attempts) == (1.5, 0.3, 7)


def test_a_non_number_names_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLW_LEADER_LEASE_S", "three")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.subject == "MLW_LEADER_LEASE_S"


def test_renew_must_fit_inside_the_step_down_window():
    with pytest.raises(ConfigError) as info:
        coordination_config(Settings(leader_lease_s=3.0, leader_renew_s=2.5))
    assert "leader_renew_s" in info.value.subject and "MLW_LEADER_RENEW_S" in info.value.subject
    assert "2.1" in str(info.value)


def test_non_positive_values_are_rejected():
    with pytest.raises(ConfigError) as info:
        coordination_config(Settings(heartbeat_s=0))
    assert "heartbeat_s" in info.value.subject


def test_gateway_from_settings_needs_a_url_and_applies_the_settings():
    with pytest.raises(ConfigError) as info:
        gateway_from_settings(Settings())
    assert info.value.subject == "redis_url"
    gw = gateway_from_settings(Settings(redis_url="redis://u:pw@localhost:6390/1", key_prefix="team-a",
                                        redis_retry_attempts=2, redis_breaker_reset_s=9.0))
    assert gw.key("x") == "team-a:x" and gw.safe_url == "redis://u:***@localhost:6390/1"
    assert gw.retry_policy.attempts == 2
    assert gw._breaker.reset_timeout == 9.0
