"""The compiler's public API: what the CLI, the runtime and the tests call.

>>> r = compile_text('''
... workflow w {
...   task prep: data_preprocessing { source = "sklearn:iris" }
...   task train: model_training after prep { algorithm = "random_forest" }
... }''')
>>> r.ok, [t.id for t in r.plan.tasks]
(True, ['prep', 'train'])
>>> r.plan.task("train").params["data"]
{'$ref': 'prep.output'}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from mlflowdsl import ir
from mlflowdsl.compiler import graph, imports, lint, lower, resolve, typecheck
from mlflowdsl.compiler.perf import no_gc_pauses
from mlflowdsl.compiler.seed_document import load_yaml
from mlflowdsl.compiler.seed_spec import load_document, spec_to_module
from mlflowdsl.errors import CompileError
from mlflowdsl.files import read_regular_file
from mlflowdsl.grammar import ast, limits
from mlflowdsl.grammar.diagnostics import Diagnostic, Span, sort_key
from mlflowdsl.grammar.parser import parse_text

SEED_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass
class CompileResult:
    plan: ir.Plan | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # file -> text, for caret rendering
    # The parsed main file and the files it imports (by path), when parsing got that far:
    # what an editor needs for symbols, definitions and hovers.
    module: ast.Module | None = None
    imported: dict[str, ast.Module] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def raise_for_errors(self) -> ir.Plan:
        """The plan, or ``CompileError`` carrying every diagnostic."""
        if not self.ok or self.plan is None:
            raise CompileError(self.diagnostics)
        return self.plan


def _read(path: str) -> str:
    """A source file's text: regular files of at most ``limits.MAX_SOURCE_BYTES`` only (a
    device, FIFO or directory is refused before anything is read)."""
    return read_regular_file(path, limits.MAX_SOURCE_BYTES).decode("utf-8")


def _unreadable(path: str, exc: Exception) -> Diagnostic:
    if isinstance(exc, UnicodeDecodeError):
        return Diagnostic("MLW105", f"cannot read `{path}`: not UTF-8 text", subject=path, hint="save the file as UTF-8")
    reason = getattr(exc, "strerror", None) or str(exc)
    return Diagnostic("MLW105", f"cannot read `{path}`: {reason}", subject=path, hint="check the path and its permissions")


def is_seed_document(file: str, text: str | None = None) -> bool:
    """A document in the JSON/YAML workflow form: by suffix, or for a name without one
    (``<string>``) by content (a JSON object).

    >>> is_seed_document("w.yaml"), is_seed_document("w.mlw", "{"), is_seed_document("<string>", ' {"a": 1}')
    (True, False, True)
    """
    name = file.lower()
    if name.endswith(SEED_SUFFIXES):
        return True
    if name.endswith(".mlw"):
        return False
    return text is not None and text.lstrip().startswith("{")


# ---------------------------------------------------------------------------- entry points


def compile_file(path: str | os.PathLike, *, params: dict[str, str] | None = None, params_file=None,
                 strict: bool = False) -> CompileResult:
    """Compile a ``.mlw`` file or a ``.json``/``.yaml`` workflow document."""
    return _run_file(str(path), params, params_file, strict, lower_plan=True)


def lint_file(path: str | os.PathLike, *, params: dict[str, str] | None = None, params_file=None,
              strict: bool = False) -> CompileResult:
    """Every check of ``compile_file`` (including the lint warnings), without building the IR."""
    return _run_file(str(path), params, params_file, strict, lower_plan=False)


def compile_text(text: str, file: str = "<string>", *, params: dict[str, str] | None = None, params_file=None,
                 strict: bool = False, lower_plan: bool = True,
                 read: Callable[[str], str] | None = None) -> CompileResult:
    """Compile source text (``.mlw``, or a workflow document when ``file`` ends in .json/.yaml or
    the text starts with ``{``). ``read(path)`` supplies the text of imported files (an editor's
    unsaved buffers); by default they are read from disk."""
    result = CompileResult(sources={file: text})
    with no_gc_pauses():
        module = _parse(text, file, result)
        if module is None:
            return result
        return _compile_module(module, result, params, params_file, strict, lower_plan, read)


def compile_module(module: ast.Module, text: str, *, params: dict[str, str] | None = None, params_file=None,
                   strict: bool = False, lower_plan: bool = True,
                   read: Callable[[str], str] | None = None) -> CompileResult:
    """Compile a module already parsed from ``text`` (an editor that re-parsed only the part of
    the file that changed): every pass after parsing, as ``compile_text`` runs them."""
    result = CompileResult(sources={module.file: text})
    with no_gc_pauses():
        return _compile_module(module, result, params, params_file, strict, lower_plan, read)


def compile_spec(spec: dict, file: str = "<spec>", *, params: dict[str, str] | None = None, params_file=None,
                 strict: bool = False, lower_plan: bool = True) -> CompileResult:
    """Compile the JSON/YAML workflow form as a dict (``{"workflow_id": ..., "tasks": [...]}``)."""
    result = CompileResult()
    try:
        module = spec_to_module(spec, file)
    except CompileError as exc:
        result.diagnostics.extend(exc.diagnostics)
        return result
    with no_gc_pauses():
        return _compile_module(module, result, params, params_file, strict, lower_plan)


def load_plan(obj: Any, *, params: dict[str, str] | None = None, params_file=None) -> ir.Plan:
    """A ``Plan`` from a ``.mlw`` path, a ``.json``/``.yaml`` workflow document, a compiled plan
    JSON file (it has ``ir_version``), a ``Plan``, or a dict (workflow document or plan). Raises
    ``CompileError`` with diagnostics when it cannot."""
    if isinstance(obj, ir.Plan):
        return obj
    if isinstance(obj, dict):
        if "ir_version" in obj:
            return _validate_plan(obj, "<plan>")
        return compile_spec(obj, params=params, params_file=params_file).raise_for_errors()
    path = str(obj)
    if path.lower().endswith(SEED_SUFFIXES):
        try:
            text = _read(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise CompileError([_unreadable(path, exc)]) from None
        if '"ir_version"' in text or "ir_version:" in text:
            data = load_document(text, path)
            if "ir_version" in data:
                return _validate_plan(data, path)
    return compile_file(path, params=params, params_file=params_file).raise_for_errors()


def _validate_plan(data: dict, where: str) -> ir.Plan:
    if str(data.get("ir_version")) != ir.IR_VERSION:
        raise CompileError([Diagnostic("MLW104", f"plan has ir_version {data.get('ir_version')!r}; this mlw reads "
                                       f"{ir.IR_VERSION!r}", subject=where, hint="recompile the workflow source")])
    try:
        plan = ir.Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CompileError([Diagnostic("MLW106", f"not a valid compiled plan: {loc}: {first['msg']}", subject=where,
                                       hint="recompile it with `mlw compile`")]) from None
    if not plan.fingerprint:
        return plan.with_fingerprint()
    if plan.fingerprint != plan.compute_fingerprint():
        # the fingerprint names the computation (lineage, cache reuse); a plan edited by hand
        # after compiling would run under a name that is not its own
        raise CompileError([Diagnostic("MLW106", "the plan's fingerprint does not match its content (edited after "
                                       "compiling?)", subject=where, hint="recompile it with `mlw compile`")])
    return plan


# ---------------------------------------------------------------------------- the pipeline


def _run_file(path: str, params, params_file, strict: bool, lower_plan: bool) -> CompileResult:
    result = CompileResult()
    try:
        text = _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        result.diagnostics.append(_unreadable(path, exc))
        return result
    result.sources[path] = text
    with no_gc_pauses():
        module = _parse(text, path, result)
        if module is None:
            return result
        return _compile_module(module, result, params, params_file, strict, lower_plan)


def _parse(text: str, file: str, result: CompileResult) -> ast.Module | None:
    try:
        if is_seed_document(file, text):
            return spec_to_module(load_document(text, file), file, text)
        return parse_text(text, file)
    except CompileError as exc:
        result.diagnostics.extend(exc.diagnostics)
        return None
    except RecursionError:
        code = "MLW106" if is_seed_document(file, text) else "MLW101"
        result.diagnostics.append(Diagnostic(code, "input nested too deeply", Span(file, 1, 1, 1, 2),
                                             hint="flatten the nested lists or maps"))
        return None


def _importer(result: CompileResult, read: Callable[[str], str] | None = None) -> Callable[[str], ast.Module]:
    def parse(path: str) -> ast.Module:
        text = (read or _read)(path)  # OSError and UnicodeDecodeError are reported at the import by load_imports
        result.sources[path] = text
        return parse_text(text, path)
    return parse


def _params_file(params_file, result: CompileResult) -> tuple[dict | None, str]:
    if params_file is None:
        return None, "params file"
    path = str(params_file)
    try:
        text = _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        result.diagnostics.append(_unreadable(path, exc))
        return None, path
    try:
        data = load_yaml(text, path) if path.lower().endswith((".yaml", ".yml")) else json.loads(text)
    except CompileError as exc:  # an alias bomb
        result.diagnostics.extend(exc.diagnostics)
        return None, path
    except Exception as exc:
        result.diagnostics.append(Diagnostic("MLW212", f"cannot read parameters from `{path}`: {exc}", subject=path,
                                             hint="a params file is a JSON or YAML object of name: value"))
        return None, path
    if not isinstance(data, dict):
        result.diagnostics.append(Diagnostic("MLW212", f"`{path}` must hold an object of name: value", subject=path))
        return None, path
    return data, path


def _compile_module(module: ast.Module, result: CompileResult, params, params_file, strict: bool,
                    lower_plan: bool, read: Callable[[str], str] | None = None) -> CompileResult:
    result.module = module
    try:
        return _passes(module, result, params, params_file, strict, lower_plan, read)
    except RecursionError:  # the passes recurse over expressions; absurd nesting ends here
        result.plan = None
        result.diagnostics.append(Diagnostic("MLW219", "expression nested too deeply", module.span,
                                             hint="flatten the nested lists or maps"))
        return result


def _passes(module: ast.Module, result: CompileResult, params, params_file, strict: bool,
            lower_plan: bool, read: Callable[[str], str] | None = None) -> CompileResult:
    diags = result.diagnostics

    def stop() -> bool:
        # One mistake can surface several times at one place (a template argument used by
        # two tasks of the template): report it once.
        unique = list(dict.fromkeys(diags))
        unique.sort(key=sort_key)
        diags[:] = unique
        return any(d.severity == "error" for d in diags)

    file_values, subject = _params_file(params_file, result)
    if stop():
        return result
    templates, imported, import_diags = imports.load_imports(module, _importer(result, read))
    result.imported = imported
    diags.extend(import_diags)
    if stop():
        return result
    resolved, rdiags = resolve.resolve(module, templates, overrides=params, file_values=file_values,
                                       file_subject=subject)
    diags.extend(rdiags)
    if resolved is None or stop():
        return result
    checked = typecheck.typecheck(resolved)
    diags.extend(checked.diagnostics)
    if stop():
        return result
    g, order, gdiags = graph.build_graph(checked.tasks)
    diags.extend(gdiags)
    if stop():
        return result
    ignores = lint.ignored_codes([module, *imported.values()])
    diags.extend(lint.lint(lint.LintContext(resolved, checked.tasks, g), strict=strict, ignores=ignores))
    if stop() or not lower_plan:
        return result
    result.plan = lower.lower(resolved, checked.tasks, checked.tunings, order, module.file)
    return result
