"""mlflowdsl from Python: the layer above the compiler and the runtime.

``DistributedOrchestrator`` (async) and ``MLWorkflowManager`` (sync) submit workflows in any
accepted form (a workflow dict ``{"workflow_id": ..., "tasks": [...]}`` or ``WorkflowSpec``, a
``.mlw``/``.json``/``.yaml`` path,
``.mlw`` text, a ``Plan``), track and cancel executions, register and deploy models and run
tuning requests, embedded or on a cluster.
"""

from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.sdk.models import deploy_ml_model, register_ml_model
from mlflowdsl.sdk.orchestrator import DistributedOrchestrator, MLWorkflowManager
from mlflowdsl.sdk.spec import MLTaskSpec, WorkflowSpec, to_plan
from mlflowdsl.sdk.tuning import optimize_hyperparameters

__all__ = ["DistributedOrchestrator", "MLTaskSpec", "MLWorkflowManager", "TaskResult", "WorkflowExecution",
           "WorkflowSpec", "deploy_ml_model", "optimize_hyperparameters", "register_ml_model", "to_plan"]
