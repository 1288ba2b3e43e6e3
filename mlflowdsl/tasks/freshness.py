"""Project modules edited while a worker lives are imported again before a custom task runs.

A long-lived Dask worker (a warm cluster from ``mlw cluster up``, an external cluster, cluster
mode's workers) keeps every module it imported. Custom tasks' cache keys cover their code
(``codeprint``), so after an edit the task runs again — and must run the edited code, not the
worker's old copy. Before a custom task's function is loaded, :func:`refresh` compares the
files of the project's modules (files under the workflow's directory, not installed code, not
mlflowdsl) with their state when this worker last loaded them; if any changed, all of them are
forgotten and imported again, so ``from helpers import f`` picks up the new ``f``.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType
from typing import Iterator

from mlflowdsl.tasks.source import is_installed, under

_FRAMEWORK = frozenset({"mlflowdsl", "stdlib_tasks"})
_lock = threading.Lock()
_loaded: dict[str, tuple[int, int]] = {}  # module file -> (mtime_ns, size) when last loaded here


_candidates: dict[str, tuple[int, list[tuple[ModuleType, str]]]] = {}  # root -> (len(sys.modules), modules)


def _under_root(base_dir: str) -> list[tuple[ModuleType, str]]:
    """The project's modules now imported: their files lie under ``base_dir``. Recomputed only
    when ``sys.modules`` grew or shrank (a scan of every module costs ~0.2 ms; a task, less)."""
    root = os.path.realpath(base_dir)
    known = _candidates.get(root)
    if known is not None and known[0] == len(sys.modules):
        return known[1]
    prefixes = tuple({root + os.sep, os.path.abspath(base_dir) + os.sep})
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or not path.startswith(prefixes) or name.partition(".")[0] in _FRAMEWORK:
            continue
        real = os.path.realpath(path)
        if under(real, root) and not is_installed(real):
            found.append((module, real))
    _candidates[root] = (len(sys.modules), found)
    return found


def _project_modules(base_dir: str) -> Iterator[tuple[ModuleType, str, tuple[int, int]]]:
    for module, real in _under_root(base_dir):
        try:
            st = os.stat(real)
        except OSError:  # deleted since: nothing to reload it from
            continue
        yield module, real, (st.st_mtime_ns, st.st_size)


def refresh(base_dir: str | None) -> bool:
    """Forget the project's modules if one of their files changed since this worker loaded it;
    True when it did (callers then drop what they derived from the old code)."""
    if not base_dir:
        return False
    with _lock:
        modules = list(_project_modules(base_dir))
        if not any(path in _loaded and _loaded[path] != stamp for _, path, stamp in modules):
            return False
        # Forgotten, not reloaded one by one: the next import executes each afresh in the
        # order the code imports them, so ``from helpers import f`` binds the new ``f``.
        for module, path, _ in modules:
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]
            _loaded.pop(path, None)
        _candidates.clear()
        importlib.invalidate_caches()
        return True


def remember(base_dir: str | None) -> None:
    """Note the state of the project's module files now loaded (after a task's function was)."""
    if not base_dir:
        return
    with _lock:
        for _, path, stamp in _project_modules(base_dir):
            _loaded[path] = stamp
