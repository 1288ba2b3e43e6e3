"""The plan as canonical JSON: sorted keys, 2-space indent, trailing newline.

The output is byte-for-byte ``json.dumps(plan_dict, indent=2, sort_keys=True,
ensure_ascii=False)`` (``Plan.canonical_json``); the standard library falls back to its
pure-Python encoder whenever ``indent`` is set, which made writing a 10,000-task plan
slower than compiling it. This encoder builds the same text with C-level string escaping
and reuses the text of equal small objects (the directives most tasks share).

>>> print(dumps_indented({"b": [1, 2.5, None], "a": {"x": "é\\n"}, "c": {}, "d": []}))
{
  "a": {
    "x": "é\\n"
  },
  "b": [
    1,
    2.5,
    null
  ],
  "c": {},
  "d": []
}
"""

from __future__ import annotations

from json.encoder import encode_basestring  # the C implementation when available
from typing import Any

from mlflowdsl import ir


def render_json_plan(plan: ir.Plan) -> str:
    from mlflowdsl.compiler.plan_text import indented

    text = indented(plan, end="\n")  # the same bytes, without dumping every task again
    if text is None:  # values the fast path leaves to the reference (see plan_text)
        text = dumps_indented(plan.canonical_dict()) + "\n"
    return text


def dumps_indented(data: Any) -> str:
    return dumps_at(data, 0)


def dumps_at(data: Any, level: int, memo: dict | None = None) -> str:
    """The text of ``data`` as it appears nested ``level`` deep in an indented document;
    ``memo`` may be shared between calls to reuse the text of equal small objects.

    >>> print(dumps_at({"a": [1]}, 1))
    {
        "a": [
          1
        ]
      }
    """
    out: list[str] = []
    _encode(data, level, out, {} if memo is None else memo)
    return "".join(out)


def _float(value: float) -> str:
    if value != value or value in (_INF, -_INF):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


_INF = float("inf")


def _scalar(value: Any) -> str | None:
    """The JSON text of a scalar, or None for containers."""
    t = type(value)
    if t is str:
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if t is int:
        return int.__repr__(value)
    if t is float:
        return _float(value)
    if isinstance(value, (dict, list, tuple)):
        return None
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(value: Any, level: int, out: list[str], memo: dict) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
        return
    inner = "\n" + "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        key = None
        if len(value) <= 8:  # small objects of scalars (spans, directives) repeat a lot
            try:
                # the type is part of the key: True == 1 == 1.0 but their JSON differs
                key = (level, tuple(sorted((k, type(v), v) for k, v in value.items())))
                cached = memo.get(key)
            except TypeError:  # a nested list or dict: not a leaf object
                key = cached = None
            if cached is not None:
                out.append(cached)
                return
        start = len(out)
        sep = "{" + inner
        for k in sorted(value):
            out.append(sep)
            sep = "," + inner
            out.append(encode_basestring(k if isinstance(k, str) else str(k)))
            out.append(": ")
            v = value[k]
            text = _scalar(v)
            if text is not None:
                out.append(text)
            else:
                _encode(v, level + 1, out, memo)
        out.append("\n" + "  " * level + "}")
        if key is not None:
            text = "".join(out[start:])
            del out[start:]
            out.append(text)
            memo[key] = text
        return
    if not value:
        out.append("[]")
        return
    sep = "[" + inner
    for item in value:
        out.append(sep)
        sep = "," + inner
        text = _scalar(item)
        if text is not None:
            out.append(text)
        else:
            _encode(item, level + 1, out, memo)
    out.append("\n" + "  " * level + "]")
