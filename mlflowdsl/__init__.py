"""mlflowdsl: a declarative language and distributed runner for machine-learning pipelines."""

import importlib

__version__ = "0.1.0"

# The Python API (mlflowdsl.sdk), imported on first use so `import mlflowdsl` stays cheap.
_LAZY = {name: "mlflowdsl.sdk" for name in (
    "DistributedOrchestrator", "MLWorkflowManager", "WorkflowSpec", "MLTaskSpec", "WorkflowExecution", "TaskResult")}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlflowdsl' has no attribute {name!r}")
