"""IR -> Dask futures: the executor.

``Executor.run`` decides up front, on the client, what each task needs (``planning``: skipped
by ``when``, served from a shared cache, carried over from a resumed execution, loaded from
cache because a running task needs its output, or run), checks resources against the live
workers, then hands the decision to a :class:`~mlflowdsl.runtime.run.Run`, which submits the
whole DAG and follows it to the end. Records go to the state backend in batches and lifecycle
events to the event bus (``run_record``).
"""

from __future__ import annotations

import os
from dataclasses import replace

from mlflowdsl.errors import RuntimeFailure
from mlflowdsl.ir import Plan, Task
from mlflowdsl.runtime import resources as res
from mlflowdsl.runtime.cluster import ClientOnDemand
from mlflowdsl.runtime.datafp import fingerprinter
from mlflowdsl.runtime.events.base import EventBus
from mlflowdsl.runtime.planning import cache_probe, plan_run
from mlflowdsl.runtime.records import WorkflowExecution
from mlflowdsl.runtime.run import Run, RunOptions
from mlflowdsl.runtime.run_record import Listener
from mlflowdsl.runtime.state.base import StateBackend
from mlflowdsl.settings import Settings

__all__ = ["Executor", "Listener", "ResourceRefused", "RunOptions"]


class ResourceRefused(RuntimeFailure):
    """Some tasks ask for resources no worker has; nothing was submitted."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("no worker can run " + ("this task" if len(problems) == 1 else f"{len(problems)} tasks")
                         + ":\n  " + "\n  ".join(problems),
                         hint="lower the request, or add workers that declare the resource "
                              "(`dask worker ADDR --resources \"GPU=1\"`)")


def absolute_paths(settings: Settings) -> Settings:
    return replace(settings, home=os.path.abspath(settings.home),
                   cache_dir=os.path.abspath(settings.cache_dir) if settings.cache_dir else None)


class Executor:
    def __init__(self, client, settings: Settings, state: StateBackend, bus: EventBus,
                 listener: Listener | None = None):
        self._client = client  # a Dask client, or a ClientOnDemand opened only if something must run
        # Workers may run in another directory (an external cluster): paths must be absolute.
        self.settings = absolute_paths(settings)
        self.state = state
        self.bus = bus
        self.listener = listener
        self._contains = cache_probe(self.settings)
        self.fingerprint = fingerprinter(self.settings)  # data fingerprints, remembered under <home>

    @property
    def client(self):
        """The Dask client (opening the cluster now when it is opened on demand)."""
        if isinstance(self._client, ClientOnDemand):
            return self._client.get()
        return self._client

    def no_cluster_needed(self) -> None:
        """The run submits nothing (every task cached, skipped or carried over)."""
        if isinstance(self._client, ClientOnDemand):
            self._client.not_needed()

    def check_resources(self, tasks: list[Task]) -> set[str]:
        """Refuse tasks no live worker can run; returns the resource names workers declare."""
        workers = res.worker_resources(self.client.scheduler_info(n_workers=-1))
        problems = res.unsatisfiable(tasks, workers)
        if problems:
            raise ResourceRefused(problems)
        return res.declared_names(workers)

    def run(self, plan: Plan, options: RunOptions = RunOptions()) -> WorkflowExecution:
        try:
            decision = plan_run(plan, options.base_dir, options.resume, self._contains, self.fingerprint)
            by_id = plan.tasks_by_id()
            # Nothing to run: no client is asked for, so an on-demand cluster is never started.
            declared = self.check_resources([by_id[t] for t in decision.run]) if decision.run else set()
            return Run(self, plan, decision, options, declared).execute()
        finally:
            self.fingerprint.close()  # the memo's SQLite connection (reopened if the executor runs again)
