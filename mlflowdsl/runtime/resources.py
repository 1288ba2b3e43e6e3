"""IR resources -> Dask worker resources, and the up-front "can any worker ever run this?"
check (Dask would otherwise keep an unsatisfiable task waiting forever).

Mapping: ``cpu`` -> ``CPU``, ``memory`` -> ``MEMORY`` (bytes), ``gpu`` -> ``GPU``, and a
non-default ``domain`` -> ``domain:<name>`` = 1. A resource is requested only when some worker
declares it (a cluster without resources runs everything anywhere); ``GPU`` is the
exception: asking for a GPU on a cluster where no worker has one is refused. ``storage``
and ``network`` are informational (not mapped).

>>> workers = {"w1": {"CPU": 2.0, "MEMORY": 8e9}}
>>> from mlflowdsl.ir import Resources, Task
>>> requirements(Task(id="t", type="custom", resources=Resources(cpu=1, memory=10**9)), declared_names(workers))
{'CPU': 1.0, 'MEMORY': 1000000000.0}
"""

from __future__ import annotations

from typing import Iterable

from mlflowdsl.ir import Task


def worker_resources(scheduler_info: dict) -> dict[str, dict[str, float]]:
    """Worker address -> declared resources, from ``Client.scheduler_info()``."""
    return {addr: dict(w.get("resources") or {}) for addr, w in scheduler_info.get("workers", {}).items()}


def declared_names(workers: dict[str, dict[str, float]]) -> set[str]:
    return {name for res in workers.values() for name in res}


def requirements(task: Task, declared: set[str]) -> dict[str, float]:
    r = task.resources
    req: dict[str, float] = {}
    if "CPU" in declared and r.cpu > 0:
        req["CPU"] = float(r.cpu)
    if "MEMORY" in declared and r.memory > 0:
        req["MEMORY"] = float(r.memory)
    if r.gpu > 0:
        req["GPU"] = float(r.gpu)
    if task.domain != "default" and any(n.startswith("domain:") for n in declared):
        req[f"domain:{task.domain}"] = 1.0
    return req


def _describe(req: dict[str, float]) -> str:
    def fmt(name: str, value: float) -> str:
        if name == "MEMORY":
            return f"memory={value / 2**30:.3g}GiB"
        if name.startswith("domain:"):
            return f"domain={name.split(':', 1)[1]}"
        return f"{name.lower()}={value:g}"
    return ", ".join(fmt(k, v) for k, v in sorted(req.items()))


def _where(task: Task) -> str:
    s = task.span
    return f"{s.file}:{s.line}:{s.column}" if s else f"task {task.id}"


def unsatisfiable(tasks: Iterable[Task], workers: dict[str, dict[str, float]]) -> list[str]:
    """One message per task that no live worker can ever run (empty when all fit)."""
    declared = declared_names(workers)
    problems = []
    for task in tasks:
        req = requirements(task, declared)
        if not req:
            continue
        if any(all(res.get(k, 0.0) >= v for k, v in req.items()) for res in workers.values()):
            continue
        best = ", ".join(f"{addr} has {_describe({k: res.get(k, 0.0) for k in req}) or 'nothing'}"
                         for addr, res in sorted(workers.items())) or "no workers"
        problems.append(f"{_where(task)}: task `{task.id}` needs {_describe(req)} but no worker offers it ({best})")
    return problems
