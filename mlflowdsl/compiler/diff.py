"""``mlw diff OLD NEW``: a semantic diff of two compiled plans.

Tasks are matched by id. For each task that changed it lists the fields (``params.C``,
``retry.attempts``, ``dependencies`` ...), and it says which tasks the change invalidates:
a task whose cache key changes (type, function, implementation version, params, cache
version or dependencies) or that is new, plus everything downstream of it — what a run of
NEW would execute again after a run of OLD. Changes that do not enter the key (retries,
timeouts, resources) are listed but invalidate nothing.

>>> from mlflowdsl.ir import Plan, Task, Workflow
>>> old = Plan(workflow=Workflow(id="w"), tasks=[Task(id="a", type="t", key_part="1"),
...        Task(id="b", type="t", dependencies=["a"], key_part="2")])
>>> new = old.model_copy(update={"tasks": [old.tasks[0].model_copy(update={"params": {"x": 1}, "key_part": "3"}),
...                                         old.tasks[1]]})
>>> d = diff_plans(old, new)
>>> [c.task_id for c in d.changed], d.invalidated
(['a'], ('a', 'b'))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlflowdsl.ir import Plan, Task

# Fields of a task that make up its cache key (ir.key_part) or its inputs' keys.
KEY_FIELDS = ("type", "uses", "impl_version", "params", "cache.version", "dependencies")
MISSING = "<absent>"


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class TaskChange:
    task_id: str
    fields: tuple[FieldChange, ...]

    @property
    def changes_key(self) -> bool:
        return any(f.field == k or f.field.startswith(k + ".") for f in self.fields for k in KEY_FIELDS)


@dataclass(frozen=True)
class PlanDiff:
    workflow: tuple[FieldChange, ...]  # workflow params and metadata
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[TaskChange, ...]
    invalidated: tuple[str, ...]  # tasks of NEW that would run again, in plan order

    @property
    def empty(self) -> bool:
        return not (self.workflow or self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {"workflow": [f.as_dict() for f in self.workflow], "added": list(self.added),
                "removed": list(self.removed),
                "changed": [{"task_id": c.task_id, "changes_cache_key": c.changes_key,
                             "fields": [f.as_dict() for f in c.fields]} for c in self.changed],
                "invalidated": list(self.invalidated)}


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts as dotted paths; lists and scalars stay whole."""
    if isinstance(value, dict) and not set(value) == {"$ref"}:
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flat(value[k], f"{prefix}.{k}" if prefix else str(k)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: value}


def _task_fields(task: Task) -> dict[str, Any]:
    data = task.model_dump(mode="json", exclude={"id", "key_part", "span"})
    return _flat(data, "")


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(k, old.get(k, MISSING), new.get(k, MISSING))
                 for k in sorted(set(old) | set(new)) if old.get(k, MISSING) != new.get(k, MISSING))


def _downstream(plan: Plan, roots: set[str]) -> set[str]:
    dependents: dict[str, list[str]] = {t.id: [] for t in plan.tasks}
    for t in plan.tasks:
        for d in t.dependencies:
            dependents.setdefault(d, []).append(t.id)
    seen, stack = set(roots), list(roots)
    while stack:
        for nxt in dependents.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    old_tasks, new_tasks = old.tasks_by_id(), new.tasks_by_id()
    added = tuple(t.id for t in new.tasks if t.id not in old_tasks)
    removed = tuple(t.id for t in old.tasks if t.id not in new_tasks)
    changed = []
    for t in new.tasks:
        if t.id in old_tasks:
            fields = _field_changes(_task_fields(old_tasks[t.id]), _task_fields(t))
            if fields:
                changed.append(TaskChange(t.id, fields))
    wf_old = _flat(old.workflow.model_dump(mode="json", exclude={"source"}), "")
    wf_new = _flat(new.workflow.model_dump(mode="json", exclude={"source"}), "")
    roots = set(added) | {c.task_id for c in changed if c.changes_key}
    hit = _downstream(new, roots)
    invalidated = tuple(t.id for t in new.tasks if t.id in hit)
    return PlanDiff(_field_changes(wf_old, wf_new), added, removed, tuple(changed), invalidated)


def _show(value: Any) -> str:
    if value == MISSING:
        return MISSING
    return json.dumps(value, sort_keys=True)


def render_text(d: PlanDiff, old_name: str = "OLD", new_name: str = "NEW") -> str:
    if d.empty:
        return f"no semantic difference between {old_name} and {new_name}\n"
    lines = [f"--- {old_name}", f"+++ {new_name}"]
    for f in d.workflow:
        lines.append(f"~ workflow {f.field}: {_show(f.old)} -> {_show(f.new)}")
    lines += [f"+ task {tid} (added)" for tid in d.added]
    lines += [f"- task {tid} (removed)" for tid in d.removed]
    for c in d.changed:
        note = "" if c.changes_key else " (cache key unchanged)"
        lines.append(f"~ task {c.task_id}{note}")
        lines += [f"    {f.field}: {_show(f.old)} -> {_show(f.new)}" for f in c.fields]
    if d.invalidated:
        lines.append(f"would rerun ({len(d.invalidated)}): {', '.join(d.invalidated)}")
    else:
        lines.append("would rerun: nothing (no change enters a cache key)")
    return "\n".join(lines) + "\n"
