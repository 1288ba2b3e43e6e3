"""Custom task code read without running it: where a ``uses`` module is, whether it may be
named, and its function's signature, all from the source file's syntax tree.

``mlw lint``/``compile`` (and ``mlw plan``'s cache keys) use this module only: nothing here
imports the user's module, so linting a checked-out repository runs none of its code. The
worker imports the module when the task runs (``mlflowdsl.tasks.custom``).

**What ``uses`` may name** (docs/operations.md "Security"): a module whose source file is

* under the workflow file's directory, the current directory (the project) or a directory
  listed in ``PYTHONPATH`` (an import path the user chose), and not inside an installation
  directory (the standard library, site-packages); or
* in a top-level package listed in the ``trusted_modules`` setting (``MLW_TRUSTED_MODULES``,
  comma-separated), e.g. a team's installed package of steps.

The standard library (``os``, ``subprocess``, ``builtins``...) and mlflowdsl itself are refused
whatever the setting says.

>>> try:
...     check_name("os:system")
... except UsesRefused as exc:
...     print(exc.message)
`os` is a standard-library module: a custom task must name a function of your project
>>> check_name("steps:clean")
('steps', 'clean')
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import sys
import sysconfig
import typing
from pathlib import Path

from mlflowdsl.errors import ConfigError, MlwError
from mlflowdsl.settings import load_settings
from mlflowdsl.tasks import TaskContext
from mlflowdsl.tasks.values import Dataset, TrainedModel

SETTING = "MLW_TRUSTED_MODULES"
MAX_SOURCE_BYTES = 2 * 1024 * 1024  # a custom step's module larger than this is not read
REFUSED_PACKAGES = frozenset({"builtins", "mlflowdsl", "stdlib_tasks", "__main__"})


class UsesRefused(MlwError):
    """``uses`` names something a custom task may not call (see the module doc)."""


class UsesNotFound(MlwError):
    """The module or function named by ``uses`` cannot be found (statically)."""


def check_name(uses: str) -> tuple[str, str]:
    """``(module, function)`` of ``uses``, refusing the standard library by name."""
    module, sep, attr = uses.partition(":")
    if not sep or not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise UsesNotFound(f"{uses!r} is not of the form 'package.module:function'", subject="uses",
                           hint='write uses = "module:function", e.g. uses = "steps:clean" for steps.py next to the workflow')
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise UsesRefused(f"`{top}` is a standard-library module: a custom task must name a function of your project",
                          subject="uses", hint="put the step in a .py file next to the workflow and name it here")
    if top in REFUSED_PACKAGES:
        raise UsesRefused(f"`{top}` cannot be named by a custom task", subject="uses",
                          hint="use the task type it provides, or a function of your project")
    return module, attr


def trusted_packages() -> frozenset[str]:
    """Top-level packages the ``trusted_modules`` setting allows besides project files."""
    try:
        text = load_settings().trusted_modules or ""
    except ConfigError:  # a broken mlw.toml is reported by the command that needs the settings
        text = os.environ.get(SETTING, "")
    return frozenset(p.strip() for p in str(text).replace(";", ",").split(",") if p.strip())


@functools.lru_cache(maxsize=1)
def _installation_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return tuple(sorted(os.path.realpath(d) for d in dirs))


def under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def project_roots(base_dir: str) -> list[str]:
    """The workflow's directory, the current directory and the ``PYTHONPATH`` entries."""
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [os.path.realpath(r) for r in (base_dir, os.getcwd(), *extra)]


def is_installed(path: str | os.PathLike) -> bool:
    """Inside the standard library, site-packages or the interpreter's prefix."""
    real = os.path.realpath(path)
    return any(under(real, d) for d in _installation_dirs()) or bool({"site-packages", "dist-packages"} & set(Path(real).parts))


def is_project_file(path: str | os.PathLike, base_dir: str) -> bool:
    """Under one of the :func:`project_roots`, and not installed code."""
    real = os.path.realpath(path)
    return not is_installed(real) and any(under(real, root) for root in project_roots(base_dir))


def check_at_run_time(uses: str) -> None:
    """The rule as the worker applies it before importing (a plan may not have come through
    the compiler: one edited in a shared Redis): the standard library and mlflowdsl by name,
    and installed packages outside ``trusted_modules``, wherever the worker's path finds them.
    Only the top-level package is looked up (``find_spec`` of a top-level name imports nothing)."""
    module, _ = check_name(uses)
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return  # the import reports it
    if spec is None:
        return
    places = [p for p in [spec.origin, *(spec.submodule_search_locations or [])] if p and os.path.isabs(p)]
    if any(is_installed(p) for p in places) and top not in trusted_packages():
        raise UsesRefused(f"`{top}` is an installed package ({places[0]}), not part of the project", subject="uses",
                          hint=f"to allow it, list it in the trusted_modules setting ({SETTING}={top})")


def search_path(base_dir: str) -> list[str]:
    """Where modules are looked for, in order: the workflow's directory, the current directory,
    then ``sys.path`` (as the runtime's workers see them)."""
    out: list[str] = []
    for entry in (base_dir, os.getcwd(), *sys.path):
        full = os.path.abspath(entry or os.getcwd())
        if full not in out and os.path.isdir(full):
            out.append(full)
    return out


def find_module_file(module: str, base_dir: str) -> Path | None:
    """The source file of ``module`` (``pkg/mod.py`` or ``pkg/mod/__init__.py``), found by walking
    the search path's directories, never by importing (``importlib.util.find_spec`` of a dotted
    name would import and run its parent packages)."""
    parts = module.split(".")
    for entry in search_path(base_dir):
        directory = Path(entry, *parts[:-1])
        if not directory.is_dir():
            continue
        for candidate in (directory / f"{parts[-1]}.py", directory / parts[-1] / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def locate(uses: str, base_dir: str) -> tuple[str, str, Path]:
    """``(module, function, file)`` of an allowed ``uses``; raises :class:`UsesRefused` or
    :class:`UsesNotFound`."""
    module, attr = check_name(uses)
    path = find_module_file(module, base_dir)
    top = module.split(".")[0]
    if path is None:
        raise UsesNotFound(f"cannot find module `{module}` (no {module.replace('.', '/')}.py next to the workflow, in "
                           "the current directory or on the Python path)", subject="uses",
                           hint="put the module next to the workflow file, or fix the module name")
    if not is_project_file(path, base_dir) and top not in trusted_packages():
        raise UsesRefused(f"`{module}` ({path}) is outside the project: a custom task may name only modules under the "
                          "workflow's directory, the current directory or PYTHONPATH", subject="uses",
                          hint=f"to allow an installed package, list it in the trusted_modules setting ({SETTING}={top})")
    return module, attr, path


@functools.lru_cache(maxsize=512)
def _parse(path: str, mtime_ns: int, size: int) -> ast.Module:
    if size > MAX_SOURCE_BYTES:
        raise UsesNotFound(f"{path} is {size} bytes; custom task modules are read up to {MAX_SOURCE_BYTES}",
                           subject="uses", hint="split the module")
    with open(path, "rb") as fh:
        text = fh.read()
    try:
        return ast.parse(text, filename=path)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        raise UsesNotFound(f"cannot read {path}{f':{line}' if line else ''}: {exc.msg if isinstance(exc, SyntaxError) else exc}",
                           subject="uses", hint="fix the syntax error in the module") from None


def parse_file(path: str | os.PathLike) -> ast.Module:
    """The syntax tree of a source file, cached per (path, mtime_ns, size)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsesNotFound(f"cannot read {path}: {exc.strerror}", subject="uses") from None
    if not os.path.isfile(path):
        raise UsesNotFound(f"{path} is not a regular file", subject="uses")
    return _parse(os.fspath(path), st.st_mtime_ns, st.st_size)


def find_function(uses: str, base_dir: str, _depth: int = 0) -> tuple[Path, ast.Module, ast.FunctionDef]:
    """The file, module tree and ``def`` node of the function ``uses`` names. A name the module
    re-exports (``from .impl import fn``) is followed to the module that defines it."""
    module, attr, path = locate(uses, base_dir)
    tree = parse_file(path)
    name = attr.split(".")[-1]
    scope: list[ast.stmt] = tree.body
    for part in attr.split(".")[:-1]:  # Class.method: only a @staticmethod can be a task
        cls = next((n for n in scope if isinstance(n, ast.ClassDef) and n.name == part), None)
        if cls is None:
            raise UsesNotFound(f"`{module}` defines no class `{part}`", subject="uses")
        scope = cls.body
    found = None
    for node in scope:  # the last binding wins, as when the module runs
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            found = node
        elif isinstance(node, ast.ImportFrom) and _depth < 5 and scope is tree.body:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    found = ("import", node, alias)
    if isinstance(found, tuple):
        _, node, alias = found
        target = resolve_import_from(module, path, node)
        return find_function(f"{target}:{alias.name}", base_dir, _depth + 1)
    if found is None:
        raise UsesNotFound(f"`{module}` ({path}) defines no function `{attr}`", subject="uses",
                           hint="check the function name after the colon (a module-level def)")
    if isinstance(found, ast.AsyncFunctionDef):
        raise UsesNotFound(f"`{attr}` in {path}:{found.lineno} is async; a custom task function is a plain def",
                           subject="uses")
    return path, tree, found


def resolve_import_from(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from X import ...`` written in ``module`` (file ``path``)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


# ------------------------------------------------------------------ the signature, statically

class UnknownDefault:
    """A default value the source does not spell as a literal (computed when the module runs):
    the parameter is optional, and its value is the function's own when the task runs."""

    def __repr__(self) -> str:
        return "<default from the source>"


_BUILTIN_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "bytes": bytes, "dict": dict, "list": list,
                  "tuple": tuple, "set": set, "frozenset": frozenset, "object": object}


_VALUE_CLASSES = {"Dataset": Dataset, "TrainedModel": TrainedModel, "TaskContext": TaskContext}


def _imports(tree: ast.Module) -> dict[str, str]:
    """Module-level import bindings: local name -> dotted origin (``np`` -> ``numpy``,
    ``Dataset`` -> ``mlflowdsl.tasks.values.Dataset``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def annotation_of(node: ast.expr | None, imports: dict[str, str]):
    """The type an annotation's syntax stands for, as far as the compiler checks it: builtins,
    ``typing`` forms and mlflowdsl's value classes; anything else is ``Any`` (checked when the
    task runs)."""
    if node is None:
        return typing.Any
    if isinstance(node, ast.Constant):
        if node.value is None:
            return type(None)
        if isinstance(node.value, str):  # a quoted annotation (or `from __future__ import annotations`)
            try:
                return annotation_of(ast.parse(node.value, mode="eval").body, imports)
            except SyntaxError:
                return typing.Any
        return typing.Any
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[annotation_of(node.left, imports), annotation_of(node.right, imports)]
    name = _dotted(node.value if isinstance(node, ast.Subscript) else node)
    if name is None:
        return typing.Any
    head, _, rest = name.partition(".")
    origin = imports.get(head, head if head in _BUILTIN_TYPES else f"?.{head}") + (f".{rest}" if rest else "")
    last = origin.rsplit(".", 1)[-1]
    if origin.split(".")[0] in ("mlflowdsl", "stdlib_tasks") and last in _VALUE_CLASSES:  # stdlib_tasks.values re-exports them
        target = _VALUE_CLASSES[last]
    elif origin in _BUILTIN_TYPES:
        target = _BUILTIN_TYPES[origin]
    elif origin.split(".")[0] in ("typing", "typing_extensions") and hasattr(typing, last):
        target = getattr(typing, last)
    else:
        return typing.Any
    if not isinstance(node, ast.Subscript):
        return target
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if target is typing.Literal:
        try:
            return typing.Literal[tuple(ast.literal_eval(i) for i in items)]
        except ValueError:
            return typing.Any
    if target is typing.Annotated:
        return annotation_of(items[0], imports)
    args = tuple(annotation_of(i, imports) for i in items)
    try:
        return target[args if len(args) > 1 else args[0]]
    except TypeError:
        return typing.Any


def _default(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return UnknownDefault()


def static_signature(tree: ast.Module, fn: ast.FunctionDef):
    """An ``inspect.Signature`` of ``fn`` built from its source (see :func:`annotation_of`)."""
    imports = _imports(tree)
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + [_default(d) for d in a.defaults]
    params = []
    for arg, default in zip(positional, defaults):
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                        annotation=annotation_of(arg.annotation, imports) if arg.annotation else inspect.Parameter.empty))
    if a.vararg:
        params.append(inspect.Parameter(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY,
                                        default=inspect.Parameter.empty if default is None else _default(default),
                                        annotation=annotation_of(arg.annotation, imports) if arg.annotation else inspect.Parameter.empty))
    if a.kwarg:
        params.append(inspect.Parameter(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    returns = annotation_of(fn.returns, imports) if fn.returns is not None else inspect.Signature.empty
    return inspect.Signature(params, return_annotation=returns)
