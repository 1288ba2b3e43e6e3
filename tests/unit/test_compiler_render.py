"""Plan renderers: the fast JSON encoder is byte-identical to the standard library's
canonical form; DOT and Mermaid are deterministic and show skipped/tuned tasks."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mlflowdsl import ir
from mlflowdsl.compiler.render import render
from mlflowdsl.canonical_json import dumps as dumps_indented

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=5)),
                      max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(values)
def test_dumps_indented_equals_json_dumps(value):
    assert dumps_indented(value) == json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def test_equal_looking_leaf_objects_of_different_types_are_not_confused():
    value = [{"a": True}, {"a": 1}, {"a": 1.0}, {"a": True}]
    assert dumps_indented(value) == json.dumps(value, indent=2, sort_keys=True)


def plan() -> ir.Plan:
    return ir.Plan(
        workflow=ir.Workflow(id="w \"q\""),
        tasks=[ir.Task(id="a", type="custom", uses="m:f"),
               ir.Task(id="t[x]", type="model_training", dependencies=["a"]),
               ir.Task(id="z", type="model_evaluation", dependencies=["a", "t[x]"], skip=True)],
        tunings=[ir.Tuning(task="t[x]", search=[], objective=ir.Objective(direction="maximize", metric="accuracy"))],
    ).with_fingerprint()


def test_json_render_is_the_canonical_json():
    p = plan()
    assert render(p, "json") == p.canonical_json() + "\n"


def test_dot():
    assert render(plan(), "dot") == "\n".join([
        'digraph "w \\"q\\"" {',
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  "a" [label="a\\ncustom"];',
        '  "t[x]" [label="t[x]\\nmodel_training", peripheries=2];',
        '  "z" [label="z\\nmodel_evaluation", style="rounded,dashed"];',
        '  "a" -> "t[x]";',
        '  "a" -> "z";',
        '  "t[x]" -> "z";',
        "}",
    ]) + "\n"


def test_mermaid():
    assert render(plan(), "mermaid") == "\n".join([
        "flowchart LR",
        '  t0["a<br/>custom"]',
        '  t1["t[x]<br/>model_training (tuned)"]',
        '  t2["z<br/>model_evaluation (skipped)"]',
        "  t0 --> t1",
        "  t0 --> t2",
        "  t1 --> t2",
    ]) + "\n"
