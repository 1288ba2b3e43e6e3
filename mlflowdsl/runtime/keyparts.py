"""What a task's cache key is made of, kept so a later plan can say *which* part changed.

A cache key is a hash: it says "something changed" but not what. The executor stores the
components of every key in the task's record (``TaskResult.key_components``); ``mlw plan``
and ``mlw explain`` compare them field by field with the nearest previous record of the same
workflow and task.

>>> from mlflowdsl.ir import Task, key_part
>>> t = Task(id="a", type="data_preprocessing", params={"scale": "standard"},
...          key_part=key_part("data_preprocessing", "1", None, {"scale": "standard"}, ""))
>>> old = task_components(t, {}, [])
>>> new = {**old, "params": {"scale": "minmax"}}
>>> [(c.field, c.reason) for c in compare(old, new)]
[('params.scale', 'params changed')]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from mlflowdsl.ir import Plan, Task
from mlflowdsl.runtime.cache.base import cache_key
from mlflowdsl.runtime.keys import CODE_PREFIX, PACKAGE_PREFIX, data_fingerprints, file_fingerprint

# component -> the reason `mlw plan` gives when it differs
REASONS = {
    "type": "task type changed",
    "uses": "function changed",
    "impl_version": "implementation version changed",
    "params": "params changed",
    "cache_version": "cache version changed",
    "inputs": "input changed upstream",
    "data": "input data changed",
    "code": "code changed",
    "packages": "package version changed",
    "tuning": "tuning changed",
}
MISSING = "<absent>"


@dataclass(frozen=True)
class Change:
    field: str  # "params.n_estimators", "inputs.prepare", "impl_version" ...
    old: Any
    new: Any
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_components(task: Task, input_keys: dict[str, str], data: list[str]) -> dict[str, Any]:
    """The JSON-able components of ``task``'s cache key (``key`` is the full key). A custom
    task's code and package fingerprints (``keys.code_fingerprints``, at the front of ``data``)
    are kept apart as ``code`` ({file: sha256}) and ``packages`` ({name: version})."""
    code = {e[len(CODE_PREFIX):].rpartition(":")[0]: e.rpartition(":")[2] for e in data if e.startswith(CODE_PREFIX)}
    packages = dict(e[len(PACKAGE_PREFIX):].partition("=")[::2] for e in data if e.startswith(PACKAGE_PREFIX))
    comp = {
        "type": task.type,
        "uses": task.uses,
        "impl_version": task.impl_version,
        "params": task.params,
        "cache_version": task.cache.version,
        "inputs": dict(input_keys),
        "data": [e for e in data if not e.startswith((CODE_PREFIX, PACKAGE_PREFIX))],
        "key": cache_key(task.key_part, [input_keys[d] for d in task.dependencies], data),
    }
    if code or packages:
        comp.update(code=code, packages=packages)
    return comp


def plan_components(plan: Plan, base_dir: str, fingerprint: Callable[[str], str] | None = None,
                    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Full cache keys and their components, for every task; data files and URLs are
    fingerprinted by ``fingerprint`` (default: ``keys.file_fingerprint``, no memo), each once."""
    keys: dict[str, str] = {}
    components: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}

    compute = fingerprint or file_fingerprint

    def once(path: str) -> str:
        if path not in seen:
            seen[path] = compute(path)
        return seen[path]

    # A tuned task's components also hold its `tune` block (its key part covers it: keys.tuned_key_parts).
    tunings = {t.task: t.model_dump(mode="json", exclude={"span"}) for t in plan.tunings}
    for task in plan.tasks:  # topological order (IR invariant)
        comp = task_components(task, {d: keys[d] for d in task.dependencies},
                               data_fingerprints(task, base_dir, once))
        if task.id in tunings:
            comp["tuning"] = tunings[task.id]
        keys[task.id] = comp["key"]
        components[task.id] = comp
    return keys, components


def _short(value: Any) -> Any:
    """Keys and fingerprints are long hashes: 12 characters identify them in a report."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return value


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict params as dotted names, so a change names the innermost field.

    >>> _flat({"hp": {"n": 1, "d": {"x": 2}}, "data": {"$ref": "a.output"}})
    {'hp.n': 1, 'hp.d.x': 2, 'data': {'$ref': 'a.output'}}
    """
    out: dict[str, Any] = {}
    for k, v in value.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v and set(v) != {"$ref"}:
            out.update(_flat(v, name + "."))
        else:
            out[name] = v
    return out


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Field-by-field differences between two components dicts (``old`` -> ``new``)."""
    changes: list[Change] = []
    for name in ("type", "uses", "impl_version", "cache_version"):
        if old.get(name) != new.get(name):
            changes.append(Change(name, old.get(name), new.get(name), REASONS[name]))
    for name in ("params", "inputs", "code", "packages", "tuning"):
        if name in ("code", "packages"):  # file names and package names hold dots: not flattened
            a, b = dict(old.get(name) or {}), dict(new.get(name) or {})
        else:
            a, b = _flat(old.get(name) or {}), _flat(new.get(name) or {})
        for k in sorted(set(a) | set(b)):
            if a.get(k, MISSING) != b.get(k, MISSING):
                changes.append(Change(f"{name}.{k}", _short(a.get(k, MISSING)), _short(b.get(k, MISSING)),
                                      REASONS[name]))
    a, b = old.get("data") or [], new.get("data") or []
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else MISSING
        y = b[i] if i < len(b) else MISSING
        if x != y:
            changes.append(Change(f"data[{i}]", _short(x), _short(y), REASONS["data"]))
    return changes


def reasons(changes: list[Change]) -> list[str]:
    """The distinct reasons, in the order of ``REASONS``; upstream names are kept.

    >>> reasons([Change("inputs.b", "1", "2", REASONS["inputs"]), Change("params.x", 1, 2, REASONS["params"])])
    ['params changed (x)', 'input changed upstream (b)']
    """
    out: list[str] = []
    for name, reason in REASONS.items():
        fields = [c.field for c in changes if c.field == name or c.field.startswith(name + ".")
                  or c.field.startswith(name + "[")]
        if not fields:
            continue
        if name in ("inputs", "params", "code", "packages", "tuning"):
            reason += " (" + ", ".join(f.split(".", 1)[1] for f in fields) + ")"
        out.append(reason)
    return out
