"""``DistributedOrchestrator`` (async) and ``MLWorkflowManager`` (sync): submit, watch and cancel
workflows, register and deploy models, tune, from Python.

Two modes, one API:

- **cluster** (``redis_url`` given): ``submit_ml_workflow`` queues the plan on the cluster's
  Redis stream, where orchestrator instances (``mlw orchestrator start``) claim it. With a
  ``scheduler`` as well, this process also runs one instance in a background thread, so the
  API alone is a working cluster member.
- **embedded** (no Redis): one in-process instance runs executions in background threads on an
  embedded Dask cluster (or ``scheduler``), with SQLite state under ``<home>``.

"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from mlflowdsl.ir import Plan
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.runtime.cluster import open_client
from mlflowdsl.runtime.cluster_mode.health import cluster_status
from mlflowdsl.runtime.cluster_mode.instance import OrchestratorInstance
from mlflowdsl.runtime.cluster_mode.submission import request_cancel, submit_plan
from mlflowdsl.runtime.coordination import gateway_from_settings
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state import open_state
from mlflowdsl.runtime.state.redis import RedisState
from mlflowdsl.errors import MlwError
from mlflowdsl.sdk.models import TaskModel, deploy_ml_model, model_of_task, register_ml_model, training_tasks
from mlflowdsl.sdk.spec import to_plan
from mlflowdsl.sdk.tuning import plan_for_request, result_of
from mlflowdsl.settings import Settings, load_settings

__all__ = ["DistributedOrchestrator", "MLWorkflowManager"]

log = logging.getLogger(__name__)


class _Embedded:
    """One in-process instance: executions in threads, a shared Dask client, SQLite state."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._closing = threading.Event()
        self._holder: threading.Thread | None = None
        self._client = None
        self._lock = threading.Lock()
        self.threads: dict[str, threading.Thread] = {}
        self.cancels: dict[str, str] = {}
        self.state = open_state(settings)

    def client(self):
        """The shared client, opened on first use in a thread of its own: a Dask client must be
        closed in the (contextvars) context that opened it, and API calls come from many."""
        with self._lock:
            if self._client is None:
                ready = threading.Event()
                failure: list[BaseException] = []

                def hold():
                    try:
                        with open_client(self.settings) as client:
                            self._client = client
                            ready.set()
                            self._closing.wait()
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        failure.append(exc)
                        ready.set()

                self._holder = threading.Thread(target=hold, daemon=True, name="mlw-embedded-client")
                self._holder.start()
                ready.wait()
                if failure:
                    raise failure[0]
            return self._client

    def submit(self, plan: Plan) -> str:
        pending = WorkflowExecution(id=uuid.uuid4().hex[:12], workflow_id=plan.workflow.id,
                                    workflow_name=plan.workflow.name, plan_json=plan.model_dump_json(),
                                    plan_fingerprint=plan.fingerprint or plan.compute_fingerprint(),
                                    params=dict(plan.workflow.params), source=plan.workflow.source)
        self.state.save(pending.with_tasks({t.id: TaskResult(task_id=t.id) for t in plan.tasks}))
        thread = threading.Thread(target=self._run, args=(plan, pending), daemon=True, name=f"mlw-{pending.id}")
        self.threads[pending.id] = thread
        thread.start()
        return pending.id

    def _run(self, plan: Plan, pending: WorkflowExecution) -> None:
        try:
            run_plan(plan, self.settings, client=self.client(), state=self.state, resume_from=pending,
                     cancel_check=lambda: self.cancels.get(pending.id))
        except Exception as exc:  # noqa: BLE001 - recorded, not raised in a background thread
            log.debug("execution %s failed", pending.id, exc_info=True)
            current = self.state.get_execution(pending.id)
            if not current.finished:
                self.state.save_execution(current.advance("failed", ended=time.time(),
                                                           error=f"{type(exc).__name__}: {exc}"))

    def cancel(self, execution_id: str) -> None:
        execution = self.state.get_execution(execution_id)
        self.cancels[execution.id] = "cancelled by the API"

    def close(self) -> None:
        for thread in list(self.threads.values()):
            thread.join()
        self._closing.set()
        if self._holder is not None:
            self._holder.join(60)
        self.state.close()


class MLWorkflowManager:
    """Submits workflows, tracks their executions, cancels them; the engine behind
    :class:`DistributedOrchestrator` (synchronous; use it directly from scripts)."""

    def __init__(self, settings: Settings, *, run_instance: bool = False):
        self.settings = settings
        self.cluster = bool(settings.redis_url)
        self._embedded: _Embedded | None = None
        self._instance = None
        self._instance_stop = threading.Event()
        self._instance_thread: threading.Thread | None = None
        if self.cluster:
            self.gateway = gateway_from_settings(settings)
            self.state = RedisState(self.gateway)
            if run_instance:
                self._start_instance()
        else:
            self._embedded = _Embedded(settings)
            self.state = self._embedded.state

    def _start_instance(self) -> None:
        ready = threading.Event()

        def serve():
            with open_client(self.settings) as client:
                self._instance = OrchestratorInstance(self.settings, f"api-{uuid.uuid4().hex[:6]}", client).start()
                ready.set()
                self._instance.run(until=self._instance_stop)

        self._instance_thread = threading.Thread(target=serve, daemon=True, name="mlw-api-instance")
        self._instance_thread.start()
        ready.wait(60)

    def submit(self, spec: Any) -> str:
        plan = to_plan(spec)
        if self._embedded is not None:
            return self._embedded.submit(plan)
        return submit_plan(self.gateway, plan)

    def get_execution(self, execution_id: str) -> WorkflowExecution:
        return self.state.get_execution(execution_id)

    def wait(self, execution_id: str, timeout: float | None = None, poll_s: float = 0.2) -> WorkflowExecution:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            execution = self.get_execution(execution_id)
            if execution.finished:
                return execution
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_id} still {execution.status} after {timeout:g}s")
            time.sleep(poll_s)

    def cancel(self, execution_id: str) -> WorkflowExecution:
        if self._embedded is not None:
            self._embedded.cancel(execution_id)
            return self.get_execution(execution_id)
        return request_cancel(self.gateway, execution_id, settings=self.settings)

    def progress(self, execution_id: str) -> dict[str, Any]:
        execution = self.get_execution(execution_id)
        counts = execution.counts()
        done = sum(n for s, n in counts.items() if s in ("succeeded", "cached", "failed", "skipped"))
        return {"execution_id": execution.id, "status": execution.status, "done": done,
                "total": len(execution.tasks), "counts": counts}

    def health(self) -> dict[str, Any]:
        if self._embedded is not None:
            running = [e for e, t in self._embedded.threads.items() if t.is_alive()]
            return {"mode": "embedded", "instances": [{"id": "embedded", "domains": ["*"], "load": len(running)}],
                    "leader": {"id": "embedded", "epoch": 0}, "running": running}
        return {"mode": "cluster", **cluster_status(self.gateway, self.settings)}

    def close(self) -> None:
        if self._instance is not None:
            self._instance_stop.set()
            if self._instance_thread is not None:
                self._instance_thread.join(60)
        if self._embedded is not None:
            self._embedded.close()


class DistributedOrchestrator:
    """The async Python API: coroutines over :class:`MLWorkflowManager`.

    ``DistributedOrchestrator()`` runs embedded; ``DistributedOrchestrator(redis_url=...)``
    submits to a cluster (and with ``scheduler=`` also serves as one instance of it).
    Use ``async with`` (or ``await close()``) to stop background work.
    """

    def __init__(self, redis_url: str | None = None, scheduler: str | None = None,
                 settings: Settings | None = None, *, run_instance: bool | None = None):
        base = settings or load_settings()
        overrides = {k: v for k, v in {"redis_url": redis_url, "scheduler": scheduler}.items() if v}
        self.settings = replace(base, **overrides)
        serve = scheduler is not None if run_instance is None else run_instance
        self.manager = MLWorkflowManager(self.settings, run_instance=serve and bool(self.settings.redis_url))
        self.submitted: list[str] = []  # this orchestrator's executions, oldest first

    async def submit_ml_workflow(self, spec: Any) -> str:
        """Compile ``spec`` (workflow dict, ``WorkflowSpec``, path, ``.mlw`` text or ``Plan``) and
        start or queue it; returns the execution id. ``CompileError`` for a wrong spec."""
        execution_id = await asyncio.to_thread(self.manager.submit, spec)
        self.submitted.append(execution_id)
        return execution_id

    def _recent_training(self) -> TaskModel | None:
        """The model of this orchestrator's most recent successful training or tuning (its
        executions still running are waited for first); None when it trained nothing."""
        for execution_id in reversed(self.submitted):
            execution = self.manager.wait(execution_id)
            trained = training_tasks(execution)
            if len(trained) > 1:
                raise MlwError(f"execution {execution.id} trained {len(trained)} models ({', '.join(trained)}): "
                               "say which to register",
                               hint=f'add "execution_id": "{execution.id}", "task_id": "{trained[-1]}" to model_info')
            if trained:
                return model_of_task(self.settings, execution.id, trained[0], cluster=self.manager.cluster)
        return None

    async def get_execution(self, execution_id: str) -> WorkflowExecution:
        return await asyncio.to_thread(self.manager.get_execution, execution_id)

    async def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowExecution:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            execution = await self.get_execution(execution_id)
            if execution.finished:
                return execution
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_id} still {execution.status} after {timeout:g}s")
            await asyncio.sleep(0.2)

    async def cancel(self, execution_id: str) -> WorkflowExecution:
        return await asyncio.to_thread(self.manager.cancel, execution_id)

    async def cluster_health(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.manager.health)

    # -- model registry (mlflowdsl/sdk/models.py) ---------------------------------------

    async def register_ml_model(self, model_info: dict[str, Any]) -> str:
        """Register a model (``model_info`` as in :func:`mlflowdsl.sdk.models.register_ml_model`);
        returns ``name/version``. Without a model in ``model_info`` (``model``, ``artifact_path``,
        ``model_uri``, ``execution_id`` + ``task_id``), the model of this orchestrator's most
        recent successful training or tuning is registered, and standard error says which."""
        return await asyncio.to_thread(register_ml_model, model_info, settings=self.settings,
                                       recent=self._recent_training)

    async def deploy_ml_model(self, model_id: str, deployment_config: dict[str, Any] | None = None) -> str:
        """Serve a registered model (detached, ``min_replicas`` behind one port); returns the
        deployment id (``mlw deployments status ID``)."""
        return await asyncio.to_thread(deploy_ml_model, model_id, deployment_config, settings=self.settings)

    # -- hyperparameter optimization (mlflowdsl/sdk/tuning.py) ----------------------------

    async def optimize_hyperparameters(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run ``request["workflow_spec"]`` with its training task tuned by
        ``request["hyperparameter_config"]`` (a search space in its JSON form); returns
        ``{"best_params", "best_value", "trials", "execution_id", "status", "error", "study",
        "model_ref"}``; ``model_ref`` (``{"execution_id", "task_id"}``) names the best trial's
        model: ``register_ml_model({"name": ..., **result["model_ref"]})``."""
        plan, task_id = await asyncio.to_thread(plan_for_request, request)
        execution = await self.wait(await self.submit_ml_workflow(plan))
        return result_of(execution, task_id)

    async def close(self) -> None:
        await asyncio.to_thread(self.manager.close)

    async def __aenter__(self) -> "DistributedOrchestrator":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

