"""Keys: a task's cache key (what it computes) and its Dask key (one submission of it).

key(task) = cache_key(task.key_part, keys of its dependencies in order, fingerprints of the
files and URLs named by its type's ``reads`` params: ``datafp``). Because each key includes its inputs' keys,
changing one task's params changes exactly its key and its dependents' keys. A tuned task's
key part also covers its ``tune`` block (:func:`tuned_key_parts`). A custom task's
fingerprints are those of its code (``code:<file>:<sha256>``) and of the packages it imports
(``package:<name>=<version>``), read statically by ``mlflowdsl.tasks.codeprint``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable

from mlflowdsl.errors import MlwError
from mlflowdsl.files import is_url
from mlflowdsl.ir import Plan, Task, Tuning
from mlflowdsl.runtime.datafp import Fingerprinter
from mlflowdsl.tasks import get_task_type
from mlflowdsl.tasks.codeprint import code_fingerprint

log = logging.getLogger(__name__)


def file_fingerprint(path: str) -> str:
    """The fingerprint of a local path or a URL, without the memo (``datafp.Fingerprinter``)."""
    return Fingerprinter()(path)


def _reads(task: Task) -> tuple[str, ...]:
    if task.type == "custom":
        return ()
    try:
        return tuple(get_task_type(task.type).reads)
    except MlwError as exc:  # an unknown type fails when it runs, with the task's own error
        log.debug("task %s: no data fingerprints (%s)", task.id, exc)
        return ()


def _is_local_path(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not (":" in value.split("/")[0] and not value.startswith("."))


CODE_PREFIX, PACKAGE_PREFIX = "code:", "package:"


def code_fingerprints(task: Task, base_dir: str) -> list[str]:
    """A custom task's code and package entries (empty for other tasks, or when its module
    cannot be found statically)."""
    if task.type != "custom" or not task.uses:
        return []
    files, packages = code_fingerprint(task.uses, base_dir)
    return ([f"{CODE_PREFIX}{path}:{digest}" for path, digest in files.items()]
            + [f"{PACKAGE_PREFIX}{name}={version}" for name, version in packages.items()])


def data_fingerprints(task: Task, base_dir: str, fingerprint: Callable[[str], str] = file_fingerprint) -> list[str]:
    out = code_fingerprints(task, base_dir)
    for name in _reads(task):
        value = task.params.get(name)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if is_url(v):
                out.append(fingerprint(v))
            elif _is_local_path(v):
                path = v if os.path.isabs(v) else os.path.normpath(os.path.join(base_dir, v))
                out.append(fingerprint(path))
    return out


def tuned_key_part(task: Task, tuning: Tuning) -> str:
    """The tuned task's key part: its own plus the tuning block (the best model of a study is
    not the model of the untuned task, so the two must not share a cache key)."""
    body = tuning.model_dump_json(exclude={"span"})
    return hashlib.sha256(f"{task.key_part}\0{body}".encode()).hexdigest()


def tuned_key_parts(plan: Plan) -> Plan:
    """``plan`` with each tuned task's ``key_part`` replaced by :func:`tuned_key_part`, for
    computing cache keys (a tuned task and its dependents get keys of their own)."""
    if not plan.tunings:
        return plan
    tunings = {t.task: t for t in plan.tunings}
    tasks = [t.model_copy(update={"key_part": tuned_key_part(t, tunings[t.id])}) if t.id in tunings else t
             for t in plan.tasks]
    return plan.model_copy(update={"tasks": tasks})


def dask_key(task_type: str, execution_id: str, run_no: str, name: str) -> str:
    """A unique Dask key for one submission of task (or trial) ``name`` of an execution, whose
    Dask task group is the task type (``mlw_model_training``), the way ``client.submit`` groups
    by function. Group names drive Dask's scheduling heuristics: a key that spelled out the task
    id would put e.g. a fan-out's source in a group of its own, which makes its dependents
    "root-ish" and queues them one scheduler round trip at a time."""
    token = hashlib.md5(f"{execution_id}/{run_no}/{name}".encode()).hexdigest()
    return f"mlw_{task_type}-{token}"
