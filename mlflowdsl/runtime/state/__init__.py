"""Where execution records live: ``StateBackend`` and its SQLite implementation."""

from mlflowdsl.runtime.state.base import StateBackend, open_state

__all__ = ["StateBackend", "open_state"]
