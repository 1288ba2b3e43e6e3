"""The fingerprint of a custom task's code, read statically (``tasks/source.py``: no import).

A custom task's cache key covers (``runtime/keys.py``):

* its function, with the module-level names it uses (helpers, constants, the import lines that
  bind them), from the function's own file;
* every project module that code imports (``import helpers``, ``from .util import f``),
  whole, and the project modules those import in turn;
* the installed version of each other non-standard-library package imported on the way
  (``numpy``, ``pandas``...).

Code is compared as a normalized syntax tree: comments, docstrings, blank lines and
formatting do not count, and neither does a consistent renaming of a function's local
variables; anything else (a body, a default argument, an annotation, a helper) does. Each
file's tree is cached per (path, mtime_ns, size).

>>> a = normalized(ast.parse("def f(x):\\n    '''doc'''\\n    tmp = x + 1  # comment\\n    return tmp\\n"))
>>> b = normalized(ast.parse("def f(x):\\n    value = (x +\\n             1)\\n    return value\\n"))
>>> c = normalized(ast.parse("def f(x):\\n    tmp = x + 2\\n    return tmp\\n"))
>>> a == b, a == c
(True, False)
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import importlib.metadata
import os
import sys
from pathlib import Path

from mlflowdsl.errors import MlwError
from mlflowdsl.tasks.source import (
    REFUSED_PACKAGES,
    under,
    find_function,
    find_module_file,
    is_project_file,
    parse_file,
    resolve_import_from,
)

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.AugAssign,
                ast.Import, ast.ImportFrom)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]


def _rename_locals(tree: ast.AST) -> None:
    """Give each function's local variables names by order of appearance (``\\0<scope>.<n>``,
    never a real identifier), so renaming them consistently changes nothing."""
    for index, scope in enumerate(n for n in ast.walk(tree) if isinstance(n, _SCOPES)):
        args = scope.args
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a}
        body = scope.body if isinstance(scope.body, list) else [scope.body]
        declared = {name for stmt in body for n in ast.walk(stmt) if isinstance(n, (ast.Global, ast.Nonlocal))
                    for name in n.names}
        mapping: dict[str, str] = {}
        for stmt in body:
            for n in ast.walk(stmt):
                if (isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)) and n.id not in params
                        and n.id not in declared and n.id not in mapping):
                    mapping[n.id] = f"\0{index}.{len(mapping)}"
        for stmt in body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and n.id in mapping:
                    n.id = mapping[n.id]


def normalized(node: ast.AST) -> str:
    """The comparable text of a syntax tree (see the module doc)."""
    tree = copy.deepcopy(node)
    _strip_docstrings(tree)
    _rename_locals(tree)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _digest(*texts: str) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def function_part(tree: ast.Module, start: ast.AST) -> list[ast.stmt]:
    """The module-level statements ``start`` depends on, in source order: itself, the
    definitions and imports of the names it uses (transitively), and every statement that is
    not a definition (module-level code that runs on import)."""
    keep: list[ast.AST] = [start]
    todo = set(_used_names(start))
    seen: set[str] = set()
    bindings: dict[str, list[ast.stmt]] = {}
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the module's docstring
    for stmt in body:
        if isinstance(stmt, _DEFINITIONS):
            for name in _bound_names(stmt):
                bindings.setdefault(name, []).append(stmt)
        elif stmt is not start:
            keep.append(stmt)
            todo |= _used_names(stmt)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for stmt in bindings.get(name, ()):
            if not any(stmt is k for k in keep):
                keep.append(stmt)
                todo |= _used_names(stmt)
    order = {id(stmt): i for i, stmt in enumerate(tree.body)}
    return sorted((k for k in keep if isinstance(k, ast.stmt)), key=lambda s: order.get(id(s), -1))


def _imported_modules(module: str, path: Path, nodes: list[ast.AST]) -> list[str]:
    """Absolute module names imported anywhere in ``nodes`` (a ``from X import y`` may import
    the submodule ``X.y``: both are listed)."""
    out: list[str] = []
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Import):
                out.extend(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom):
                base = resolve_import_from(module, path, n)
                if base:
                    out.append(base)
                out.extend(f"{base}.{a.name}" if base else a.name for a in n.names if a.name != "*")
    return out


@functools.lru_cache(maxsize=512)
def _module_digest(path: str, mtime_ns: int, size: int) -> str:
    return _digest(normalized(parse_file(path)))


@functools.lru_cache(maxsize=256)
def package_version(top: str) -> str | None:
    """The installed version of import name ``top`` (``sklearn`` -> ``"scikit-learn 1.5.2"``).

    Cheap on purpose (``importlib.metadata.packages_distributions`` reads every RECORD file,
    seconds on a large environment): the distribution named like the package, else the
    ``.dist-info`` beside the package whose ``top_level.txt`` or ``RECORD`` names it."""
    try:
        return f"{top} {importlib.metadata.version(top)}"
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    for entry in sys.path:
        if not os.path.isdir(os.path.join(entry or ".", top)) and not os.path.isfile(os.path.join(entry or ".", f"{top}.py")):
            continue
        infos = sorted(Path(entry or ".").glob("*.dist-info"))
        for name in ("top_level.txt", "RECORD"):  # the small files first
            for info in infos:
                try:
                    text = "\n" + (info / name).read_text(errors="replace")
                except OSError:
                    continue
                needles = (f"\n{top}\n",) if name == "top_level.txt" else (f"\n{top}/", f"\n{top}.py,")
                if any(n in text or (n.endswith("\n") and text.endswith(n[:-1])) for n in needles):
                    dist = importlib.metadata.Distribution.at(info)
                    return f"{dist.metadata['Name']} {dist.version}"
        return None
    return None


def _shown(path: Path, base_dir: str) -> str:
    """A file as ``mlw plan`` names it: relative to the workflow's directory or the current one."""
    real = os.path.realpath(path)
    for root in (os.path.realpath(base_dir), os.path.realpath(os.getcwd())):
        if under(real, root):
            return os.path.relpath(real, root)
    return real


_MEMO: dict[tuple, tuple[list[tuple[str, int, int]], tuple[dict[str, str], dict[str, str]]]] = {}


def _stat(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


def code_fingerprint(uses: str, base_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """``({file: sha256 of its code}, {package: version})`` for the function ``uses`` names;
    two empty dicts when it cannot be found statically (the compiler reports that). Kept per
    (uses, directories) while none of the files it read changed (mtime, size)."""
    key = (uses, os.path.abspath(base_dir), os.getcwd(), os.environ.get("PYTHONPATH", ""))
    memo = _MEMO.get(key)
    if memo is not None and all(_stat(entry[0]) == entry for entry in memo[0]):
        return memo[1]
    read: list[str] = []
    result = _fingerprint(uses, base_dir, read)
    if read:  # not a module that could not be found: it may appear later
        _MEMO[key] = ([_stat(p) for p in read], result)
    return result


def _fingerprint(uses: str, base_dir: str, read: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    try:
        path, tree, fn = find_function(uses, base_dir)
    except MlwError:
        return {}, {}
    read.append(str(path))
    module = uses.partition(":")[0]
    attr = uses.partition(":")[2]
    start: ast.AST = fn
    if "." in attr:  # Class.method: the class is the unit
        start = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == attr.split(".")[0])
    part = function_part(tree, start)
    files = {_shown(path, base_dir): _digest(*(normalized(stmt) for stmt in part))}
    packages: dict[str, str] = {}
    todo = [(name, module, path) for name in _imported_modules(module, path, part)]
    seen = {os.path.realpath(path)}
    while todo:
        name, _, _ = todo.pop()
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            continue
        found = None if top in REFUSED_PACKAGES else find_module_file(name, base_dir)
        if found is None or not is_project_file(found, base_dir):
            if found is None and "." in name and top not in REFUSED_PACKAGES \
                    and find_module_file(name.rsplit(".", 1)[0], base_dir) is not None:
                continue  # `from pkg import name`: a name, not a submodule
            version = package_version(top)
            if version is not None:
                packages[top] = version
            continue
        real = os.path.realpath(found)
        if real in seen:
            continue
        seen.add(real)
        read.append(str(found))
        st = os.stat(found)
        try:
            files[_shown(found, base_dir)] = _module_digest(str(found), st.st_mtime_ns, st.st_size)
            imported = _imported_modules(name, found, [parse_file(found)])
        except MlwError as exc:  # unreadable: its bytes still count
            files[_shown(found, base_dir)] = _digest(str(exc))
            continue
        todo.extend((sub, name, found) for sub in imported)
        parts = name.split(".")  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        todo.extend((".".join(parts[:i]), name, found) for i in range(1, len(parts)))
    return dict(sorted(files.items())), dict(sorted(packages.items()))
