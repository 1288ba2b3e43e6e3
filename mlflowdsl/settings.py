"""Settings: command-line flags > environment (``MLW_*``) > ``mlw.toml`` > embedded defaults.

No setting is needed to run an example: the defaults are an embedded Dask cluster, SQLite
state, a disk cache under ``.mlw/`` and JSONL events.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlflowdsl.errors import ConfigError

ENV = {
    "home": "MLW_HOME",
    "scheduler": "MLW_DASK_SCHEDULER",
    "redis_url": "MLW_REDIS_URL",
    "kafka_bootstrap": "MLW_KAFKA_BOOTSTRAP",
    "cache_dir": "MLW_CACHE_DIR",
    "cache_hmac_key": "MLW_CACHE_HMAC_KEY",
    "trusted_modules": "MLW_TRUSTED_MODULES",
    "memory_cache_bytes": "MLW_MEMORY_CACHE_BYTES",
    "key_prefix": "MLW_KEY_PREFIX",
    "leader_lease_s": "MLW_LEADER_LEASE_S",
    "leader_renew_s": "MLW_LEADER_RENEW_S",
    "heartbeat_s": "MLW_HEARTBEAT_S",
    "redis_timeout_s": "MLW_REDIS_TIMEOUT_S",
    "redis_retry_attempts": "MLW_REDIS_RETRY_ATTEMPTS",
    "redis_retry_max_s": "MLW_REDIS_RETRY_MAX_S",
    "redis_breaker_failures": "MLW_REDIS_BREAKER_FAILURES",
    "redis_breaker_reset_s": "MLW_REDIS_BREAKER_RESET_S",
    "max_deliveries": "MLW_MAX_DELIVERIES",
    "events": "MLW_EVENTS",
    "events_queue_capacity": "MLW_EVENTS_QUEUE_CAPACITY",
    "attempt_log_bytes": "MLW_ATTEMPT_LOG_BYTES",
    "kafka_topic": "MLW_KAFKA_TOPIC",
    "kafka_security_protocol": "MLW_KAFKA_SECURITY_PROTOCOL",
    "kafka_ssl_cafile": "MLW_KAFKA_SSL_CAFILE",
    "kafka_ssl_certfile": "MLW_KAFKA_SSL_CERTFILE",
    "kafka_ssl_keyfile": "MLW_KAFKA_SSL_KEYFILE",
    "kafka_sasl_mechanism": "MLW_KAFKA_SASL_MECHANISM",
    "kafka_sasl_username": "MLW_KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "MLW_KAFKA_SASL_PASSWORD",
    "mlflow_tracking_uri": "MLW_MLFLOW_TRACKING_URI",
    "mlflow_experiment": "MLW_MLFLOW_EXPERIMENT",
    "mlflow_flush_timeout_s": "MLW_MLFLOW_FLUSH_TIMEOUT_S",
    "registry": "MLW_REGISTRY",
}


@dataclass(frozen=True)
class Settings:
    home: str = ".mlw"  # state, cache, events and artifacts live here by default
    scheduler: str | None = None  # Dask scheduler address; None = an embedded cluster
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    cache_dir: str | None = None  # default: <home>/cache
    cache_hmac_key: str | None = None  # signs cache entries (disk and Redis); default: a key file per home
    trusted_modules: str | None = None  # installed packages custom tasks may name (comma-separated)
    memory_cache_bytes: int = 512 * 1024 * 1024
    key_prefix: str = "mlw"
    local_workers: int = 2  # embedded cluster size (worker processes)
    local_threads_per_worker: int = 1
    # Cluster coordination (docs/operations.md "Cluster coordination"); checked by
    # mlflowdsl.runtime.coordination.config.coordination_config.
    leader_lease_s: float = 3.0  # leader lease; failover takes at most lease + renew
    leader_renew_s: float = 1.0  # renew (and candidates' acquire) period; < 0.7 x lease
    heartbeat_s: float = 1.0  # instance heartbeat; an instance is dead 3 beats after its last
    redis_timeout_s: float = 1.0  # socket connect/read timeout of coordination calls
    redis_retry_attempts: int = 4  # tries per call on connection errors (backoff with full jitter)
    redis_retry_max_s: float = 3.0  # at most this long per call, retries included
    redis_breaker_failures: int = 5  # consecutive failures that open the circuit breaker
    redis_breaker_reset_s: float = 2.0  # an open breaker lets a trial call through after this
    max_deliveries: int = 5  # a submitted execution delivered more often goes to the dead-letter stream
    # Events (docs/operations.md "Events"): backends "jsonl", "kafka", "jsonl,kafka", "none";
    # None = jsonl, plus kafka when kafka_bootstrap is set.
    events: str | None = None
    events_queue_capacity: int = 10_000  # per backend; on overflow the oldest events are dropped
    # Per-attempt log capture (runtime/logcapture.py): the last this many bytes of an attempt's
    # stdout, stderr and logging records are kept in the state store; 0 turns capture off.
    attempt_log_bytes: int = 1024 * 1024
    kafka_topic: str = "mlw.events"
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # MLflow tracking (docs/mlflow.md): None = off, unless MLFLOW_TRACKING_URI is set
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None  # default: the workflow id
    mlflow_flush_timeout_s: float = 120.0  # how long the end of a run waits for MLflow logging
    # The model registry's store: None = Redis when redis_url is set, else SQLite under home;
    # "mlflow" = MLflow's Model Registry at the tracking URI (docs/mlflow.md)
    registry: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else self.home_path / "cache"

    @property
    def artifact_path(self) -> Path:
        return self.home_path / "artifacts"


def load_settings(overrides: dict[str, Any] | None = None, *, config_file: str | os.PathLike | None = None) -> Settings:
    """Merge defaults, ``mlw.toml`` (``[mlw]`` table or top level), environment and overrides
    (``None`` values in overrides are ignored, so click options can be passed straight in)."""
    values: dict[str, Any] = {}
    names = {f.name for f in fields(Settings)}
    path = Path(config_file) if config_file else Path("mlw.toml")
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(exc), subject=str(path), hint="fix the TOML syntax") from exc
        data = data.get("mlw", data)
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r}", subject=str(path),
                                  hint=f"known settings: {', '.join(sorted(names - {'extra'}))}")
            values[key] = value
    for name, var in ENV.items():
        if os.environ.get(var):
            values[name] = os.environ[var]
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    for float_field in ("leader_lease_s", "leader_renew_s", "heartbeat_s", "redis_timeout_s", "redis_retry_max_s",
                        "redis_breaker_reset_s", "mlflow_flush_timeout_s"):
        if float_field in values:
            try:
                values[float_field] = float(values[float_field])
            except (TypeError, ValueError):
                raise ConfigError(f"{float_field} must be a number of seconds, got {values[float_field]!r}",
                                  subject=ENV.get(float_field, float_field)) from None
    for int_field in ("memory_cache_bytes", "local_workers", "local_threads_per_worker", "redis_retry_attempts",
                      "redis_breaker_failures", "max_deliveries", "events_queue_capacity", "attempt_log_bytes"):
        if int_field in values:
            try:
                values[int_field] = int(values[int_field])
            except (TypeError, ValueError):
                raise ConfigError(f"{int_field} must be an integer, got {values[int_field]!r}",
                                  subject=ENV.get(int_field, int_field)) from None
    return replace(Settings(), **values)
