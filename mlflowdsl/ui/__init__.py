"""``mlw ui``: a live web UI over the state store and the model registry (docs/ui.md).

:func:`~mlflowdsl.ui.app.create_app` builds the starlette app over a
:class:`~mlflowdsl.ui.data.Source` (a state store, its settings, embedded or cluster mode).
"""

from mlflowdsl.ui.app import create_app
from mlflowdsl.ui.data import Source

__all__ = ["Source", "create_app"]
