"""Where execution records live: the ``StateBackend`` interface (:mod:`.base`), the SQLite and
Redis backends, and :func:`open_state` (:mod:`.factory`), which picks one from the settings."""

from mlflowdsl.runtime.state.base import StateBackend
from mlflowdsl.runtime.state.factory import open_state

__all__ = ["StateBackend", "open_state"]
