"""The typecheck pass: every resolved task against its task type's schema.

* the type exists (MLW201, with "did you mean");
* attributes: the type's aliases mapped to canonical names; configuration values validated
  by the type's pydantic ``Params`` (``configcheck.py``); inputs must be references to known
  tasks (MLW207) and outputs (MLW208) of a fitting kind (MLW204); a left-out required input
  is filled from the task's only dependency with a fitting output, else MLW217;
* directives (``directives.py``) merged with ``defaults``;
* ``tune`` blocks (``tunecheck.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlflowdsl import tasks as task_api
from mlflowdsl.compiler.configcheck import ConfigChecker
from mlflowdsl.compiler.directives import DIRECTIVE_ATTRS, UNSET, CacheFields, Directives, check_directives, merge
from mlflowdsl.compiler.evaluate import did_you_mean
from mlflowdsl.compiler.checked import CheckedTask, TypeInfo
from mlflowdsl.compiler.model import OutputRef, RAttr, ResolvedWorkflow, RTask
from mlflowdsl.compiler.tunecheck import check_tunes
from mlflowdsl.grammar.diagnostics import Diagnostic, Span
from mlflowdsl.ir import Tuning
from mlflowdsl.tasks.custom import static_schema


@dataclass
class TypecheckResult:
    tasks: list[CheckedTask] = field(default_factory=list)
    tunings: list[Tuning] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def typecheck(wf: ResolvedWorkflow) -> TypecheckResult:
    result = TypecheckResult()
    diags = result.diagnostics
    defaults, ddiags = _defaults(wf)
    diags.extend(ddiags)
    checker = _Checker(wf, diags)
    for t in wf.tasks:
        checked = checker.check(t, defaults)
        if checked is not None:
            result.tasks.append(checked)
    result.tunings = check_tunes(wf.tunes, {t.id: t for t in result.tasks}, checker.task_ids, diags)
    return result


def _defaults(wf: ResolvedWorkflow) -> tuple[Directives, list[Diagnostic]]:
    d = wf.defaults
    diags: list[Diagnostic] = []
    attrs = []
    for a in d.attrs:
        if a.name in DIRECTIVE_ATTRS:
            attrs.append(a)
        else:
            diags.append(Diagnostic("MLW203", f"`{a.name}` cannot be a default", a.name_span,
                                    hint=did_you_mean(a.name, DIRECTIVE_ATTRS)
                                    or "defaults hold resources, cache, retry, timeout and domain"))
    values, more = check_directives(tuple(attrs), d.blocks)
    return values, diags + more


class _Checker:
    def __init__(self, wf: ResolvedWorkflow, diags: list[Diagnostic]):
        self.diags = diags
        self.registry = task_api.registry()
        self.task_ids = {t.id: t for t in wf.tasks}
        self._types: dict[str, TypeInfo | None] = {}
        self.config = ConfigChecker(self.fail)
        self._custom_errors: dict[str, tuple[str, str]] = {}

    def fail(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, message, span, hint=hint))

    # ------------------------------------------------------------------ types

    def type_of(self, t: RTask) -> TypeInfo | None:
        """The task's type, reporting MLW201/MLW205/MLW218 for this task."""
        if t.type == "custom":
            uses = next((a for a in t.attrs if a.name == "uses"), None)
            if uses is None:
                self.fail("MLW205", f"custom task `{t.id}` needs `uses = \"package.module:function\"`", t.id_span)
                return None
            if not isinstance(uses.value, str):
                self.fail("MLW204", "`uses` must be a string \"package.module:function\"", uses.span)
                return None
            info = self.peek(t)
            if info is None:
                message, hint = self._custom_errors[uses.value]
                self.fail("MLW218", message, uses.span, hint=hint)
            return info
        info = self.peek(t)
        if info is None:
            self.fail("MLW201", f"unknown task type `{t.type}`", t.type_span,
                      hint=did_you_mean(t.type, self.registry) or f"task types: {', '.join(sorted(self.registry))}")
        return info

    def peek(self, t: RTask) -> TypeInfo | None:
        """The task's type without reporting anything (the task's own check reports)."""
        if t.type == "custom":
            uses = next((a.value for a in t.attrs if a.name == "uses"), None)
            return self._custom(uses, t.span.file) if isinstance(uses, str) else None
        if t.type not in self._types:
            cls = self.registry.get(t.type)
            self._types[t.type] = None if cls is None else TypeInfo(
                cls.name or t.type, cls, cls.Params, dict(cls.inputs), dict(cls.outputs), cls.default_output,
                dict(cls.aliases), str(cls.version))
        return self._types[t.type]

    def _custom(self, uses: str, file: str) -> TypeInfo | None:
        key = "custom:" + uses
        if key not in self._types:
            try:
                # Read from the module's source, never imported (tasks/source.py); looked up beside
                # the workflow file first, as the runtime does for its workers.
                schema = static_schema(uses, os.path.dirname(os.path.abspath(file)))
            except Exception as exc:  # an import error in user code is a diagnostic, not a crash
                self._custom_errors[uses] = (
                    f"cannot load `{uses}`: {getattr(exc, 'message', None) or exc}",
                    getattr(exc, "hint", None) or "check that the module is importable and the function exists")
                self._types[key] = None
                return None
            base = self.registry.get("custom")
            self._types[key] = TypeInfo(
                "custom", base, getattr(schema, "params_model", None) or schema.Params, dict(schema.inputs), dict(schema.outputs),
                getattr(schema, "default_output", "output"), {},
                str(getattr(schema, "version", getattr(base, "version", "1"))))
        return self._types[key]

    # ------------------------------------------------------------------ one task

    def check(self, t: RTask, defaults: Directives) -> CheckedTask | None:
        info = self.type_of(t)
        if info is None:
            return None
        deps: dict[str, Span] = {}
        ok = True
        for dep, span in t.after:
            if dep not in self.task_ids:
                # reported here, not only by the graph pass: filling inputs needs the names
                self.fail("MLW303", f"task `{t.id}` runs after unknown task `{dep}`", span,
                          hint=did_you_mean(dep, self.task_ids) or "declare that task or remove it from `after`")
                ok = False
                continue
            deps.setdefault(dep, span)
        config: dict[str, RAttr] = {}
        inputs: dict[str, RAttr] = {}
        directive_attrs: list[RAttr] = []
        uses = None
        for a in t.attrs:
            if a.name in DIRECTIVE_ATTRS:
                directive_attrs.append(a)
                continue
            if a.name == "uses":
                if t.type != "custom":
                    self.fail("MLW203", f"`uses` is only for custom tasks, not {t.type}", a.name_span)
                uses = a.value if isinstance(a.value, str) else None
                continue
            name = info.aliases.get(a.name, a.name)
            target = inputs if name in info.inputs else config
            if name in config or name in inputs:
                self.fail("MLW209", f"`{name}` is set twice (`{a.name}` is another name for it)", a.name_span)
                continue
            # the attribute itself unless an alias renames it (most do not; saves a copy per attribute)
            target[name] = a if name == a.name else RAttr(name, a.name_span, a.value, a.span, a.key_spans)
        params: dict[str, Any] = {}
        for name, a in inputs.items():
            value = self._input(t, info, name, a, deps)
            ok = ok and value is not None
            if value is not None:
                params[name] = value
        literal = self.config.check(t, info, config)
        ok = ok and literal is not None
        if literal is not None:
            params.update(literal)
        after_known = ok
        for name, spec in info.inputs.items():
            if name not in inputs and spec.required:
                filled = self._fill(t, info, name, spec, deps, quiet=not after_known)
                ok = ok and filled is not None
                if filled is not None:
                    params[name] = filled
        for group in getattr(info.cls, "input_groups", ()):
            if not any(name in inputs for name in group) and group[0] in info.inputs:
                filled = self._fill(t, info, group[0], info.inputs[group[0]], deps, quiet=not after_known)
                ok = ok and filled is not None
                if filled is not None:
                    params[group[0]] = filled
        own, ddiags = check_directives(tuple(directive_attrs), t.blocks)
        directives = merge(defaults, own)
        if own.cache.strategy is UNSET and _not_cacheable(info, params):
            # A deployment or a written file is an effect, not a value, and a result that
            # depends on the registry's state (an alias, the latest version) is not a function
            # of the cache key: rerun it unless the task itself asks for caching.
            directives = merge(directives, _NOT_CACHED)
        self.diags.extend(ddiags)
        if not ok or ddiags:
            return None
        return CheckedTask(t.id, info, t.span, t.id_span, uses, params, literal or {}, deps, t.after, directives,
                           t.when, t.when_span, t.when_constant)

    def _input(self, t: RTask, info: TypeInfo, name: str, a: RAttr, deps: dict[str, Span]) -> Any:
        spec = info.inputs[name]
        value = a.value
        if isinstance(value, str) and spec.accepts_uri:
            return value
        refs = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not spec.many:
            self.fail("MLW204", f"`{name}` takes one task output, not a list", a.span,
                      hint=f"write e.g. `{name} = TASK.{_kind_word(spec)}`")
            return None
        if not refs and spec.required:
            self.fail("MLW204", f"`{name}` needs at least one task output", a.span)
            return None
        out = []
        for ref in refs:
            if not isinstance(ref, OutputRef):
                uri = " (or a models:/NAME@ALIAS string)" if spec.accepts_uri else ""
                self.fail("MLW204", f"`{name}` takes another task's output{uri}, not a value", a.span,
                          hint=f"write `{name} = TASK.OUTPUT`")
                return None
            real = self._ref(ref, spec, name)
            if real is None:
                return None
            deps.setdefault(ref.task, ref.span)
            out.append({"$ref": f"{ref.task}.{real}"})
        return out if spec.many else out[0]

    def _ref(self, ref: OutputRef, spec: task_api.InputSpec, name: str) -> str | None:
        target = self.task_ids.get(ref.task)
        if target is None:
            self.fail("MLW207", f"unknown task `{ref.task}` in `{ref.dotted()}`", ref.task_span or ref.span,
                      hint=did_you_mean(ref.task, self.task_ids) or "declare the task or fix the name")
            return None
        tinfo = self.peek(target)
        if tinfo is None:
            return ref.output  # the target's own check reports its type problem
        real = tinfo.output_name(ref.output)
        if real is None:
            self.fail("MLW208", f"task `{ref.task}` ({tinfo.name}) has no output `{ref.output}`", ref.output_span or ref.span,
                      hint=did_you_mean(ref.output, tinfo.outputs) or f"its outputs: {', '.join(tinfo.outputs)}")
            return None
        kind = tinfo.outputs[real]
        if not _fits(spec, kind):
            self.fail("MLW204", f"`{name}` takes a {_kind_word(spec)}, but `{ref.task}.{real}` is a {kind}", ref.span,
                      hint=_fitting_outputs(tinfo, spec, ref.task))
            return None
        return real

    def _fill(self, t: RTask, info: TypeInfo, name: str, spec: task_api.InputSpec, deps: dict[str, Span],
              quiet: bool = False) -> Any:
        """The left-out input ``name`` from the only dependency that has a fitting output
        (``quiet``: an unknown `after` was reported, so a failure here is no news)."""
        candidates: list[tuple[str, str]] = []
        unknown = False
        for dep in sorted(deps):
            tinfo = self.peek(self.task_ids[dep])
            if tinfo is None:
                unknown = True  # its type problem is reported by its own check; do not guess
                continue
            named_only = getattr(tinfo.cls, "named_only_outputs", ())
            fitting = [o for o, k in tinfo.outputs.items() if _fits(spec, k) and o not in named_only]
            if fitting:
                best = tinfo.default_output if tinfo.default_output in fitting else fitting[0]
                candidates.append((dep, best))
        if len(candidates) == 1:
            dep, out = candidates[0]
            ref = {"$ref": f"{dep}.{out}"}
            return [ref] if spec.many else ref
        if unknown or quiet:
            return None
        if not candidates:
            self.fail("MLW217", f"task `{t.id}` needs `{name}` (a {_kind_word(spec)}) and no dependency provides one",
                      t.id_span, hint=f"add `{name} = TASK.OUTPUT` or `after` a task that produces a {_kind_word(spec)}")
        else:
            names = ", ".join(f"`{d}.{o}`" for d, o in candidates)
            self.fail("MLW217", f"task `{t.id}` needs `{name}` and several dependencies could provide it: {names}",
                      t.id_span, hint=f"say which one: `{name} = {candidates[0][0]}.{candidates[0][1]}`")
        return None


def _fits(spec: task_api.InputSpec, kind: str) -> bool:
    """An output of kind ``any`` (a custom function without a precise return type) may be
    anything: the compiler cannot refuse it, the task checks its inputs when it runs."""
    return kind == "any" or spec.accepts(kind)


def _kind_word(spec: task_api.InputSpec) -> str:
    return spec.kind if isinstance(spec.kind, str) else " or ".join(spec.kind)


def _fitting_outputs(info: TypeInfo, spec: task_api.InputSpec, task: str) -> str | None:
    fitting = [o for o, k in info.outputs.items() if _fits(spec, k)]
    return f"did you mean `{task}.{fitting[0]}`?" if fitting else None


_NOT_CACHED = Directives(cache=CacheFields(strategy="none"))


def _not_cacheable(info: TypeInfo, params: dict[str, Any]) -> bool:
    """Side effects, or a moving model reference (``models:/m@alias``, ``models:/m``)."""
    has_side_effects = getattr(info.cls, "has_side_effects", None)
    if has_side_effects is not None and has_side_effects(params):
        return True
    return any(_moving_model_ref(params.get(name)) for name in info.inputs)


def _moving_model_ref(value: Any) -> bool:
    """``models:/name@alias`` and ``models:/name`` name whatever the registry holds at run time;
    ``models:/name/3`` is fixed.

    >>> [_moving_model_ref(v) for v in ("models:/m@champion", "models:/m", "models:/m/3", None)]
    [True, True, False, False]
    """
    if isinstance(value, list):
        return any(_moving_model_ref(v) for v in value)
    if not isinstance(value, str) or not value.startswith("models:/"):
        return False
    rest = value[len("models:/"):]
    return "@" in rest or "/" not in rest
