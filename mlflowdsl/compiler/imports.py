"""``import "path"``: load the imported files (relative to the importing file) and collect
the templates they make available. Import cycles are MLW302 with the whole chain.

The reader is passed in (``parse(path) -> Module``), so this pass does no I/O of its own
and tests can feed it modules from memory.
"""

from __future__ import annotations

import os
from typing import Callable

from mlflowdsl.errors import CompileError
from mlflowdsl.grammar import ast
from mlflowdsl.grammar.diagnostics import Diagnostic


def _shown(path: str) -> str:
    """A path as a diagnostic prints it: control characters escaped, at most 200 characters."""
    text = path.encode("unicode_escape", "backslashreplace").decode("ascii") if not path.isprintable() else path
    return text if len(text) <= 200 else text[:120] + "…" + text[-40:]


def import_path(importer: str, path: str) -> str:
    """The file an import names, relative to the importing file's directory.

    >>> import_path("examples/templated.mlw", "lib/t.mlw")
    'examples/lib/t.mlw'
    """
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(os.path.dirname(importer), path))


def load_imports(
    main: ast.Module, parse: Callable[[str], ast.Module]
) -> tuple[dict[str, ast.Template], dict[str, ast.Module], list[Diagnostic]]:
    """Templates visible from ``main`` (its own and those of every file it imports,
    transitively), the imported modules by path, and diagnostics."""
    modules: dict[str, ast.Module] = {}
    diags: list[Diagnostic] = []

    def visit(module: ast.Module, chain: tuple[str, ...]) -> None:
        for imp in module.imports:
            path = import_path(module.file, imp.path)
            key = os.path.abspath(path)
            if key in chain:
                names = [_short(p) for p in chain[chain.index(key):]] + [_short(key)]
                diags.append(Diagnostic("MLW302", "import cycle: " + " -> ".join(names), imp.path_span,
                                        hint="move the shared templates into a file that imports neither"))
                continue
            if key in modules:
                continue
            shown = _shown(imp.path)
            if not path.lower().endswith(".mlw"):
                # never parsed, so no syntax error can quote a line of, say, /etc/shadow
                diags.append(Diagnostic("MLW105", f"cannot import `{shown}`: not a .mlw file", imp.path_span,
                                        hint="an import names a .mlw file of templates"))
                continue
            try:
                sub = parse(path)
            except CompileError as exc:
                diags.extend(exc.diagnostics)
                continue
            except UnicodeDecodeError:
                diags.append(Diagnostic("MLW105", f"cannot read imported file `{shown}`: not UTF-8 text",
                                        imp.path_span, hint="save the file as UTF-8"))
                continue
            except OSError as exc:
                diags.append(Diagnostic("MLW105", f"cannot read imported file `{shown}`: {exc.strerror or exc}",
                                        imp.path_span, hint=f"looked for {_shown(path)} (imports are relative to the importing file)"))
                continue
            modules[key] = sub
            visit(sub, chain + (key,))

    visit(main, (os.path.abspath(main.file),))
    templates: dict[str, ast.Template] = {}
    for module in [main, *modules.values()]:
        for t in module.templates:
            if t.name in templates and templates[t.name] is not t:
                first = templates[t.name].name_span
                diags.append(Diagnostic("MLW209", f"template `{t.name}` is defined twice", t.name_span,
                                        hint=f"first defined at {first.file}:{first.line}"))
                continue
            templates[t.name] = t
    return templates, {m.file: m for m in modules.values()}, diags


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path
