"""Hand-built plans of small custom tasks (``tasks_for_tests``) for the runtime tests."""

from __future__ import annotations

from mlflowdsl.ir import CachePolicy, Plan, Resources, RetryPolicy, SourceSpan, Task, Workflow, key_part

FN = "tests.integration.tasks_for_tests"


def task(id: str, fn: str, deps=(), *, cache: str = "none", retry: RetryPolicy | None = None,
         timeout: float | None = None, resources: Resources | None = None, domain: str = "default",
         skip: bool = False, line: int = 1, **params) -> Task:
    uses = f"{FN}:{fn}"
    t = Task(id=id, type="custom", uses=uses, dependencies=sorted(deps), params=params,
             cache=CachePolicy(strategy=cache), retry=retry or RetryPolicy(), timeout=timeout,
             resources=resources or Resources(), domain=domain, skip=skip,
             span=SourceSpan(file="wf.mlw", line=line, column=3, end_line=line, end_column=20))
    return t.model_copy(update={"key_part": key_part("custom", "1", uses, params, "")})


def plan(*tasks: Task, id: str = "wf") -> Plan:
    return Plan(workflow=Workflow(id=id), tasks=list(tasks)).with_fingerprint()


def ref(task_id: str, output: str = "output") -> dict:
    return {"$ref": f"{task_id}.{output}"}
