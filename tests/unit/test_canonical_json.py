"""``mlflowdsl.canonical_json``: every writer gives the bytes of the standard library's
canonical form, and the plain writers refuse what is not plain JSON."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflowdsl import canonical_json

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text())
keys = st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                 st.booleans(), st.none())
plain = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=5), inner, max_size=5)),
                     max_leaves=30)


def reference(value, indent):
    separators = (",", ":") if indent is None else None
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=indent, separators=separators)


@settings(max_examples=200, deadline=None)
@given(plain, st.sampled_from([None, 2, 4]))
def test_dumps_is_the_standard_librarys_canonical_form(value, indent):
    assert canonical_json.dumps(value, indent=indent) == reference(value, indent)


@settings(max_examples=200, deadline=None)
@given(plain)
def test_plain_writers_match_dumps(value):
    assert canonical_json.plain_compact(value) == canonical_json.compact(value) == reference(value, None)
    assert canonical_json.plain_indented(value, 0) == canonical_json.dumps(value) == reference(value, 2)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, scalars, max_size=1))
def test_keys_that_are_not_strings_are_converted_like_json_dumps(value):
    assert canonical_json.dumps(value) == reference(value, 2)


def test_equal_looking_keys_of_different_types_are_not_confused():
    value = [{True: 1}, {1: 1}, {1.0: 1}, {None: 1}]
    assert canonical_json.dumps(value) == reference(value, 2)


@pytest.mark.parametrize("value", [(1, 2), {1: "x"}, math.inf, math.nan, {"a": [1.0, math.nan]}, object()])
def test_plain_writers_refuse_what_is_not_plain(value):
    with pytest.raises(canonical_json.NotPlain):
        canonical_json.plain_compact(value)
    with pytest.raises(canonical_json.NotPlain):
        canonical_json.plain_indented(value, 1)


@pytest.mark.parametrize("indent", [None, 2])
def test_nan_and_infinity_are_refused(indent):
    with pytest.raises(ValueError):
        canonical_json.dumps({"x": math.inf}, indent=indent)


def test_the_module_imports_nothing_from_mlflowdsl():
    tree = ast.parse(Path(canonical_json.__file__).read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] == "mlflowdsl"]
