"""Task configuration against the task type's pydantic ``Params``.

A task's configuration attributes (everything that is not an input, a directive, ``uses``
or ``when``) must be plain values: quantities become their numbers, and a reference
(MLW204) or a call (MLW219, allowed only in ``tune``) is reported. The values are validated
by ``Params.model_validate_json`` in strict mode, and pydantic's errors become diagnostics
at the attribute (or map entry) they are about: MLW203 unknown attribute, MLW205 missing,
MLW206 out of range, MLW204 wrong type. Tasks with equal configuration are validated once.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable

from pydantic import ValidationError

from mlflowdsl.compiler.directives import DIRECTIVE_ATTRS
from mlflowdsl.compiler.evaluate import did_you_mean
from mlflowdsl.compiler.checked import TypeInfo
from mlflowdsl.compiler.model import CallValue, OutputRef, Qty, RAttr, RTask
from mlflowdsl.grammar.diagnostics import Span

log = logging.getLogger(__name__)

# The text handed to pydantic's JSON validation, also the key of the validation memo; made
# once. Not the canonical encoder on purpose: non-finite floats are written as Infinity/NaN,
# which pydantic reads back, so they are validated like any other value.
_VALIDATION_JSON = json.JSONEncoder(sort_keys=True)


class ConfigChecker:
    """Validates configurations, reporting through ``fail(code, message, span, hint)``."""

    def __init__(self, fail: Callable[[str, str, Span, str | None], None]) -> None:
        self.fail = fail
        self._validated: dict[tuple[str, str], tuple[dict, list]] = {}

    def check(self, t: RTask, info: TypeInfo, config: dict[str, RAttr]) -> dict[str, Any] | None:
        """The validated configuration (pydantic's JSON dump of the set fields), or None
        when something was reported."""
        values: dict[str, Any] = {}
        ok = True
        for name, a in config.items():
            try:
                values[name] = _plain(a.value)
            except _NotPlain as exc:
                ok = False
                known = set(info.params_model.model_fields)
                if name not in known:
                    self.fail("MLW203", f"unknown attribute `{name}` for task type {info.name}", a.name_span,
                              hint=did_you_mean(name, known | set(info.inputs)) or
                              f"attributes: {', '.join(sorted(known))}; inputs: {', '.join(info.inputs) or 'none'}")
                elif isinstance(exc.value, OutputRef):
                    inputs = ", ".join(info.inputs) or "none"
                    self.fail("MLW204", f"`{name}` is a setting of {info.name}, not an input: it cannot take `{exc.value.dotted()}`",
                              a.span, hint=f"inputs of {info.name}: {inputs}")
                else:
                    self.fail("MLW219", f"`{name}`: a call is only allowed inside `tune {{ search {{ }} }}`", a.span)
        if not ok:
            return None
        body = _VALIDATION_JSON.encode(values)
        key = (info.name if info.name != "custom" else f"custom:{id(info.params_model)}", body)
        cached = self._validated.get(key)
        if cached is None:
            try:
                model = info.params_model.model_validate_json(body, strict=True)
                cached = (model.model_dump(mode="json", exclude_unset=True), [])
            except ValidationError as exc:
                cached = ({}, exc.errors(include_url=False))
            self._validated[key] = cached
        dumped, errors = cached
        for err in errors:
            self._report(t, info, config, err)
        return None if errors else dumped

    def _report(self, t: RTask, info: TypeInfo, config: dict[str, RAttr], err: dict) -> None:
        loc = err.get("loc") or ()
        kind = err.get("type", "")
        field_name = str(loc[0]) if loc else None
        attr = config.get(field_name) if field_name else None
        where = ".".join(str(p) for p in loc)
        if kind == "extra_forbidden" and attr is not None and len(loc) == 1:
            known = set(info.params_model.model_fields) | set(info.inputs) | set(DIRECTIVE_ATTRS) | {"when"}
            self.fail("MLW203", f"unknown attribute `{field_name}` for task type {info.name}", attr.name_span,
                      hint=did_you_mean(field_name, known) or _hyperparameter_hint(info, config, field_name)
                      or f"attributes: {', '.join(sorted(info.params_model.model_fields))}")
            return
        if kind == "missing" and len(loc) == 1:
            self.fail("MLW205", f"task `{t.id}` ({info.name}) needs the attribute `{field_name}`", t.id_span,
                      hint=f"add `{field_name} = ...`")
            return
        msg = err.get("msg", "invalid value")
        key = str(loc[1]) if len(loc) > 1 else None
        if attr is None:  # a model-level check: point at the attribute the message names
            attr, key = _attr_named_in(msg, config)
        span = attr.span if attr is not None else t.id_span
        if attr is not None and key is not None:
            span = attr.span_of_key(key) or span
        if kind == "extra_forbidden":
            code = "MLW203"
        elif kind.startswith(("greater_than", "less_than", "too_short", "too_long", "literal_error", "enum", "multiple_of")):
            code = "MLW206"
        elif kind == "value_error" and msg.removeprefix("Value error, ").lower().startswith("unknown"):
            code = "MLW203"
        else:
            code = "MLW204"
        text = msg.removeprefix("Value error, ")
        prefix = f"`{where}`: " if where else ""
        given = err.get("input")
        if code == "MLW204" and isinstance(given, (str, int, float, bool)) and kind != "value_error":
            text += f", got {json.dumps(given)}"
        hint = None
        if kind in ("literal_error", "enum") and isinstance(given, str):
            # pydantic lists the allowed values as 'a', 'b' or 'c'
            options = re.findall(r"'((?:[^'\\]|\\.)*)'", str((err.get("ctx") or {}).get("expected", "")))
            hint = did_you_mean(given, options)
        self.fail(code, f"{prefix}{text[:1].lower() + text[1:]}", span, hint)



class _NotPlain(Exception):
    def __init__(self, value: Any):
        self.value = value


def _plain(value: Any) -> Any:
    """Quantities become their numbers; references and calls cannot be configuration."""
    if isinstance(value, Qty):
        return value.value
    if isinstance(value, (OutputRef, CallValue)):
        raise _NotPlain(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _hyperparameter_hint(info: TypeInfo, config: dict[str, RAttr], name: str) -> str | None:
    """``n_estimators = 200`` written on a training task: point at ``hyperparameters``."""
    try:
        tunable = info.cls().tunable_hyperparameters({k: a.value for k, a in config.items()})
    except Exception as exc:  # a plug-in that cannot tell: no hint
        log.debug("%s.tunable_hyperparameters failed, no hyperparameter hint: %r", info.name, exc)
        return None
    if not tunable:
        return None
    close = did_you_mean(name, tunable)
    if close is None:
        return None
    suggestion = close.split("`")[1]
    return f"`{suggestion}` is a hyperparameter: write `hyperparameters = {{ {suggestion} = ... }}`"


def _attr_named_in(message: str, config: dict[str, RAttr]) -> tuple[RAttr | None, str | None]:
    """The attribute (and map key) a model-level error message names in quotes."""
    for token in re.findall(r"'([^']*)'", message):
        for a in config.values():
            if isinstance(a.value, dict) and token in a.value:
                return a, token
            if token == a.name or a.value == token:
                return a, None
    return None, None

