"""The library entry points the CLI (and notebooks, and the orchestrator) call.

>>> # run_plan(plan, load_settings())  -> WorkflowExecution
>>> # resume("3f2a9c", load_settings()) -> WorkflowExecution
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from mlflowdsl.errors import StateError
from mlflowdsl.ir import Plan
from mlflowdsl.runtime.cluster import ClientOnDemand
from mlflowdsl.runtime.events import EventBus, open_bus
from mlflowdsl.runtime.executor import Executor, Listener, RunOptions
from mlflowdsl.runtime.mlflow_tracking import open_tracker
from mlflowdsl.runtime.records import WorkflowExecution
from mlflowdsl.runtime.state import StateBackend, open_state
from mlflowdsl.settings import Settings


def workflow_dir(plan: Plan) -> str:
    """Relative data paths in a plan are relative to its source file's directory."""
    source = plan.workflow.source
    return os.path.dirname(os.path.abspath(source)) if source else os.getcwd()


def run_plan(plan: Plan, settings: Settings, *, keep_going: bool = False, execution_id: str | None = None,
             listener: Listener | None = None, client: Any = None, state: StateBackend | None = None,
             bus: EventBus | None = None, base_dir: str | None = None,
             resume_from: WorkflowExecution | None = None, flush_interval_s: float | None = None,
             cancel_check: Any = None, fence: Any = None, owner_check: Any = None) -> WorkflowExecution:
    """Run ``plan`` to completion and return its execution record.

    Without ``client`` a client is opened from the settings (an embedded cluster unless a
    scheduler address is set) when something must run or be loaded, and closed afterwards: a
    fully cached or skipped plan starts no cluster. ``client`` may also be a
    :class:`~mlflowdsl.runtime.cluster.ClientOnDemand`, which the caller closes. Task failures are in the returned
    record; exceptions are for runs that could not happen at all (refused resources, a
    scheduler that cannot be reached). ``fence`` and ``owner_check`` are cluster mode's
    ownership of the execution (:class:`~mlflowdsl.runtime.run.RunOptions`)."""
    base = base_dir or workflow_dir(plan)
    own_state, own_bus = state is None, bus is None
    state = state or open_state(settings)
    bus = bus or open_bus(settings)
    options = RunOptions(keep_going=keep_going, base_dir=base, execution_id=execution_id, resume=resume_from,
                         cancel_check=cancel_check, fence=fence, owner_check=owner_check)
    if flush_interval_s is not None:
        options = replace(options, flush_interval_s=flush_interval_s)
    tracker = open_tracker(settings, plan, base)  # MLflow tracking (docs/mlflow.md); None when off
    if tracker is not None:
        listener = tracker.listener(listener)
    try:
        if client is not None:
            execution = Executor(client, settings, state, bus, listener).run(plan, options)
        else:
            with ClientOnDemand(settings, import_paths=[base]) as own_client:
                execution = Executor(own_client, settings, state, bus, listener).run(plan, options)
        if tracker is not None:
            tracker.finish(execution)
        return execution
    finally:
        if tracker is not None:
            tracker.close()
        if own_bus:
            bus.close()
        if own_state:
            state.close()


def load_execution(execution_id: str, settings: Settings) -> WorkflowExecution:
    state = open_state(settings)
    try:
        return state.get_execution(execution_id)
    finally:
        state.close()


def resume(execution_id: str, settings: Settings, *, keep_going: bool | None = None,
           listener: Listener | None = None, client: Any = None) -> WorkflowExecution:
    """Finish a failed, cancelled or interrupted execution: tasks that succeeded (or were
    cached) with the same cache key are kept, the rest run again, under the same id."""
    previous = load_execution(execution_id, settings)
    if previous.status == "succeeded":
        raise StateError(f"execution {previous.id} already succeeded; nothing to resume",
                         hint="run the workflow again instead")
    if not previous.plan_json:
        raise StateError(f"execution {previous.id} has no stored plan", hint="run the workflow again instead")
    plan = Plan.from_json(previous.plan_json)
    return run_plan(plan, settings, keep_going=previous.keep_going if keep_going is None else keep_going,
                    listener=listener, client=client, resume_from=previous)
