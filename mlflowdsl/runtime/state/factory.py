"""The state backend the settings select."""

from __future__ import annotations

from mlflowdsl.runtime.state.base import StateBackend
from mlflowdsl.runtime.state.sqlite import SQLiteState
from mlflowdsl.settings import Settings


def open_state(settings: Settings, *, cluster: bool = False) -> StateBackend:
    """The state backend the settings select: SQLite under ``<home>``, or the cluster's Redis
    state when ``cluster`` is asked for and ``settings.redis_url`` is set."""
    if cluster and settings.redis_url:
        from mlflowdsl.runtime.state.redis import RedisState  # noqa: PLC0415 - heavy: redis only for cluster state

        return RedisState.from_settings(settings)
    return SQLiteState(settings.home_path / "state.db")
