"""Fast, exact texts of a compiled plan: the compact JSON its fingerprint hashes and the
indented canonical JSON that ``mlw compile`` writes.

The reference definitions are in ``mlflowdsl.ir``: ``Plan.compute_fingerprint`` (sha256 of
the compact canonical JSON of ``plan.canonical_dict(spans=False)``) and the canonical JSON
(``canonical_json.dumps(plan.canonical_dict())``). Both dump every task to a dict and encode
it in full, although most tasks of a large workflow share their directives, span and
outputs. Here the text of each shared sub-object is made once (keyed by identity) and a
task's own fields are written directly, which produces the same bytes.

Exactness rests on two guards; when either fails the functions return ``None`` and callers
take the reference path:

* the field names of ``ir.Task`` and ``ir.Plan`` are the ones this module writes (a field
  added to the IR falls back until this module learns it);
* parameter values are plain JSON (``canonical_json.plain_compact``): the values pydantic's
  JSON-mode dump passes through unchanged. Tuples, non-str keys, infinities or YAML dates,
  which that dump would convert, fall back.

>>> from mlflowdsl import canonical_json, ir
>>> p = ir.Plan(workflow=ir.Workflow(id="w"), tasks=[ir.Task(id="a", type="custom", params={"n": [1, 2.5]})])
>>> fingerprint(p) == p.compute_fingerprint()
True
>>> indented(p) == canonical_json.dumps(p.canonical_dict())
True
>>> fingerprint(ir.Plan(workflow=ir.Workflow(id="w"), tasks=[ir.Task(id="a", type="t", params={"n": (1,)})])) is None
True
"""

from __future__ import annotations

import hashlib
from typing import Any

from mlflowdsl import ir
from mlflowdsl.canonical_json import NotPlain, compact, dumps_at, encode_basestring, plain_compact, plain_indented

# Sorted like the canonical JSON; checked against the models before each use.
TASK_FIELDS = ("cache", "dependencies", "domain", "id", "impl_version", "key_part", "outputs", "params",
               "resources", "retry", "skip", "span", "timeout", "type", "uses")
PLAN_FIELDS = ("fingerprint", "ir_version", "tasks", "tunings", "workflow")


def fingerprint(plan: ir.Plan, params_json: dict[int, str] | None = None) -> str | None:
    """``plan.compute_fingerprint()``, or None when the fast path does not apply. The text
    is hashed piece by piece, so the text of a large plan is never held at once.

    ``params_json`` maps ``id(task)`` to ``params_text(params)`` of the values the task was
    built from, when the caller has it already (lowering does, for the cache keys): the
    task's validated params are a copy holding the same plain values, so the same text.
    """
    digest = hashlib.sha256()
    try:
        for piece in _compact_pieces(plan, params_json or {}):
            digest.update(piece.encode())
    except _Fallback:
        return None
    return digest.hexdigest()


def indented(plan: ir.Plan, end: str = "") -> str | None:
    """``canonical_json.dumps(plan.canonical_dict()) + end``, or None. Made by one join of
    all the pieces (concatenating them one by one would copy the growing text each time)."""
    if not _fields_known():
        return None
    try:
        writer = _TaskWriter(indent=True)
        task_texts = [writer.write(t) for t in plan.tasks]
    except (NotPlain, TypeError, RecursionError):  # TypeError: keys that do not sort
        return None
    texts = {key: dumps_at(value, 1) for key, value in plan.model_dump(mode="json", exclude={"tasks"}).items()}
    pieces = []
    for i, key in enumerate(sorted([*texts, "tasks"])):
        pieces.append(("{\n  " if i == 0 else ",\n  ") + encode_basestring(key) + ": ")
        if key != "tasks":
            pieces.append(texts[key])
        elif not task_texts:
            pieces.append("[]")
        else:
            pieces.append("[\n    ")
            for j, text in enumerate(task_texts):
                if j:
                    pieces.append(",\n    ")
                pieces.append(text)
            pieces.append("\n  ]")
    pieces.append("\n}" + end)
    return "".join(pieces)


class _Fallback(Exception):
    """The fast path does not apply to this plan."""


_BATCH = 2048  # tasks per piece of the compact text


def _compact_pieces(plan: ir.Plan, params_json: dict[int, str]):
    """``canonical_json.compact(plan.canonical_dict(spans=False))`` in pieces; raises
    ``_Fallback`` (possibly after some pieces) when the fast path does not apply."""
    if not _fields_known():
        raise _Fallback
    rest = plan.model_dump(mode="json", exclude={"tasks"})
    rest.pop("fingerprint", None)
    rest["workflow"].pop("source", None)
    for tuning in rest["tunings"]:
        tuning.pop("span", None)
    texts = {key: compact(value) for key, value in rest.items()}
    writer = _TaskWriter(indent=False, params_json=params_json)
    tasks = plan.tasks
    for i, key in enumerate(sorted([*texts, "tasks"])):
        yield ("{" if i == 0 else ",") + encode_basestring(key) + ":"
        if key != "tasks":
            yield texts[key]
            continue
        yield "["
        for start in range(0, len(tasks), _BATCH):
            try:
                batch = ",".join([writer.write(t) for t in tasks[start:start + _BATCH]])
            except (NotPlain, TypeError, RecursionError):  # TypeError: keys that do not sort
                raise _Fallback from None
            yield batch if start == 0 else "," + batch
        yield "]"
    yield "}"


def _fields_known() -> bool:
    return tuple(sorted(ir.Task.model_fields)) == TASK_FIELDS and tuple(sorted(ir.Plan.model_fields)) == PLAN_FIELDS


# ----------------------------------------------------------------------------- one task


def params_text(params: Any) -> str | None:
    """The compact canonical JSON of a task's params, or None when they are not plain JSON.

    >>> params_text({"n": 1, "data": {"$ref": "a.output"}}), params_text({"t": (1,)})
    ('{"data":{"$ref":"a.output"},"n":1}', None)
    """
    if type(params) is not dict:
        return None
    try:
        return plain_compact(params)
    except (NotPlain, TypeError, RecursionError):  # TypeError: keys that do not sort
        return None


def key_part(task_type: str, impl_version: str, uses: str | None, params: dict, params_json: str,
             cache_version: str) -> str:
    """``ir.key_part(task_type, impl_version, uses, params, cache_version)`` given
    ``params_json = params_text(params)``: the body is assembled around that text instead of
    encoding the params a second time.

    >>> key_part("custom", "1", "m:f", {"n": 1}, '{"n":1}', "") == ir.key_part("custom", "1", "m:f", {"n": 1}, "")
    True
    """
    if not (type(task_type) is str and type(impl_version) is str and type(cache_version) is str
            and (uses is None or type(uses) is str)):
        return ir.key_part(task_type, impl_version, uses, params, cache_version)
    # the keys of ir.key_part's body, sorted
    body = ('{"cache_version":' + encode_basestring(cache_version) + ',"impl":' + encode_basestring(impl_version)
            + ',"params":' + params_json + ',"type":' + encode_basestring(task_type) + ',"uses":'
            + _optional_str(uses) + "}")
    return hashlib.sha256(body.encode()).hexdigest()


class _TaskWriter:
    """Writes tasks one by one, compact (``indent=False``, no span: the fingerprint's form)
    or indented as an element of the plan's ``tasks`` list (level 2)."""

    def __init__(self, indent: bool, params_json: dict[int, str] | None = None) -> None:
        self.indent = indent
        self._params_json = params_json or {}  # id(task) -> compact params text (see fingerprint)
        self._memo: dict[int, tuple[object, str]] = {}  # id(sub-model) -> (it, its text)
        if indent:
            self._open, self._sep, self._close, self._colon = "{\n      ", ",\n      ", "\n    }", ": "
            self._fields = TASK_FIELDS
        else:
            self._open, self._sep, self._close, self._colon = "{", ",", "}", ":"
            self._fields = tuple(f for f in TASK_FIELDS if f != "span")
        self._template = self._open + self._sep.join(
            encode_basestring(f).replace("%", "%%") + self._colon + "%s" for f in self._fields) + self._close

    def write(self, t: ir.Task) -> str:
        # Written out field by field, not by a loop over the field names; the
        # values are in TASK_FIELDS order, which the template was built from.
        model, strings, text = self._model, self._strings, encode_basestring
        values = (model(t.cache), strings(t.dependencies), text(t.domain), text(t.id), text(t.impl_version),
                  text(t.key_part), strings(t.outputs), self._params(t), model(t.resources), model(t.retry),
                  "true" if t.skip else "false", model(t.span), _optional_float(t.timeout), text(t.type),
                  _optional_str(t.uses))
        if not self.indent:
            values = values[:11] + values[12:]  # the fingerprint leaves the span out
        return self._template % values

    def _model(self, obj: ir.IRModel | None) -> str:
        if obj is None:
            return "null"
        made = self._memo.get(id(obj))
        if made is None:
            data = obj.model_dump(mode="json")
            text = dumps_at(data, 3) if self.indent else compact(data)
            made = self._memo[id(obj)] = (obj, text)  # holding obj keeps its id unique
        return made[1]

    def _strings(self, items: list[str]) -> str:
        if not items:
            return "[]"
        texts = map(encode_basestring, items)
        if self.indent:
            return "[\n        " + ",\n        ".join(texts) + "\n      ]"
        return "[" + ",".join(texts) + "]"

    def _params(self, t: ir.Task) -> str:
        if self.indent:
            return plain_indented(t.params, 3)
        known = self._params_json.get(id(t))
        return plain_compact(t.params) if known is None else known


def _optional_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _optional_float(value: float | None) -> str:
    if value is None:
        return "null"
    if type(value) is not float or value - value != 0:  # inf/nan: the dump writes null
        raise NotPlain
    return float.__repr__(value)
