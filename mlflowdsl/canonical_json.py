"""Canonical JSON: the one encoding of JSON values that mlflowdsl writes and hashes.

Keys are sorted, non-ASCII characters are written as they are, NaN and infinities are
refused, and the text is either compact (no spaces) or indented by two spaces. The same value
always gives the same bytes: ``dumps(data, indent=...)`` is byte-for-byte
``json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)`` with
``separators=(",", ":")`` or ``indent=...``.

Large documents are written without the standard library's slow paths (it falls back to
its pure-Python encoder whenever ``indent`` is set):

* ``dumps_at(data, level, memo)`` writes a value as it appears nested ``level`` deep in an
  indented document, with C-level string escaping, and can reuse the text of equal small
  objects through a shared ``memo``;
* ``encode_basestring`` is the JSON text of one string (quoted and escaped, in C);
* ``plain_compact`` and ``plain_indented`` write *plain* values only — exactly ``str``,
  ``int``, ``bool``, ``None``, finite ``float``, ``list`` and ``dict`` with ``str`` keys — and
  raise ``NotPlain`` for anything else (tuples, subclasses, other key types, NaN), so a
  caller can tell values that some other conversion would change.

This module imports nothing from mlflowdsl.

>>> dumps({"b": [1, 2.5], "a": "é"}, indent=None)
'{"a":"é","b":[1,2.5]}'
>>> print(dumps({"b": [1, 2.5, None], "a": {"x": "é\\n"}, "c": {}, "d": []}))
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

import json
from json.encoder import encode_basestring  # the C implementation when available
from typing import Any

# The compact encoder, made once (``json.dumps`` builds an encoder per call).
COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

def dumps(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as canonical JSON: compact when ``indent`` is None, else indented."""
    if indent is None:
        return COMPACT.encode(data)
    if indent == 2:
        return dumps_at(data, 0)
    return json.dumps(data, sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False)


def compact(data: Any) -> str:
    """``dumps(data, indent=None)``."""
    return COMPACT.encode(data)


# ----------------------------------------------------------------------------- indented


def dumps_at(data: Any, level: int, memo: dict | None = None) -> str:
    """The text of ``data`` as it appears nested ``level`` deep in a document indented by
    two spaces; ``memo`` may be shared between calls to reuse the text of equal small objects.

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


def _key(key: Any) -> str:
    """The text of a dict key, converted as ``json.dumps`` converts it."""
    if isinstance(key, str):
        return encode_basestring(key)
    if isinstance(key, float):
        return encode_basestring(_float(key))
    if key is True or key is False or key is None:
        return encode_basestring(_scalar(key))
    if isinstance(key, int):
        return encode_basestring(int.__repr__(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


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
                # the types are part of the key: True == 1 == 1.0 but their JSON differs
                key = (level, tuple(sorted((k, type(k), type(v), v) for k, v in value.items())))
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
            out.append(_key(k))
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


# ----------------------------------------------------------------------------- plain values


class NotPlain(Exception):
    """A value that is not plain JSON (see the module docstring)."""


def plain_compact(value: Any) -> str:
    """``dumps(value, indent=None)`` for a plain value; ``NotPlain`` otherwise. One pass
    that checks and writes.

    >>> plain_compact({"b": [1, 2.5, None, True], "a": {"$ref": "x.output"}})
    '{"a":{"$ref":"x.output"},"b":[1,2.5,null,true]}'
    """
    t = type(value)
    if t is str:
        return encode_basestring(value)
    if t is dict:
        parts = []
        for key in sorted(value):
            if type(key) is not str:
                raise NotPlain
            parts.append(encode_basestring(key) + ":" + plain_compact(value[key]))
        return "{" + ",".join(parts) + "}"
    if t is list:
        return "[" + ",".join([plain_compact(v) for v in value]) + "]"
    return _plain_scalar(value, t)


def plain_indented(value: Any, level: int) -> str:
    """``dumps_at(value, level)`` for a plain value; ``NotPlain`` otherwise.

    >>> print(plain_indented({"a": [1], "b": {}}, 1))
    {
        "a": [
          1
        ],
        "b": {}
      }
    """
    t = type(value)
    if t is str:
        return encode_basestring(value)
    if t is dict:
        if not value:
            return "{}"
        sep = _SEPARATORS[level + 1] if level + 1 < len(_SEPARATORS) else ",\n" + "  " * (level + 1)
        parts = []
        for key in sorted(value):
            if type(key) is not str:
                raise NotPlain
            parts.append(encode_basestring(key) + ": " + plain_indented(value[key], level + 1))
        return "{" + sep[1:] + sep.join(parts) + "\n" + "  " * level + "}"
    if t is list:
        if not value:
            return "[]"
        sep = _SEPARATORS[level + 1] if level + 1 < len(_SEPARATORS) else ",\n" + "  " * (level + 1)
        return "[" + sep[1:] + sep.join([plain_indented(v, level + 1) for v in value]) + "\n" + "  " * level + "]"
    return _plain_scalar(value, t)


_SEPARATORS = tuple(",\n" + "  " * n for n in range(16))


def _plain_scalar(value: Any, t: type) -> str:
    if t is int:
        return int.__repr__(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is float and value - value == 0:  # not inf or nan
        return float.__repr__(value)
    raise NotPlain
