"""Settings: command-line flags > environment (``MLW_*``) > ``mlw.toml`` > embedded defaults.

No setting is needed to run an example: the defaults are an embedded LocalCluster, SQLite
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
    "memory_cache_bytes": "MLW_MEMORY_CACHE_BYTES",
    "key_prefix": "MLW_KEY_PREFIX",
}


@dataclass(frozen=True)
class Settings:
    home: str = ".mlw"  # state, cache, events and artifacts live here by default
    scheduler: str | None = None  # Dask scheduler address; None = embedded LocalCluster
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    cache_dir: str | None = None  # default: <home>/cache
    cache_hmac_key: str | None = None  # signs Redis cache entries; default derived per home
    memory_cache_bytes: int = 512 * 1024 * 1024
    key_prefix: str = "mlw"
    local_workers: int = 2  # embedded LocalCluster size
    local_threads_per_worker: int = 1
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
    for int_field in ("memory_cache_bytes", "local_workers", "local_threads_per_worker"):
        if int_field in values:
            try:
                values[int_field] = int(values[int_field])
            except (TypeError, ValueError):
                raise ConfigError(f"{int_field} must be an integer, got {values[int_field]!r}",
                                  subject=ENV.get(int_field, int_field)) from None
    return replace(Settings(), **values)
