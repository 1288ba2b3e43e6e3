"""The fast plan texts (``mlflowdsl.compiler.plan_text``) are byte-for-byte the reference
ones (``Plan.compute_fingerprint``, ``dumps_indented(plan.canonical_dict())``), and values the
fast path does not handle fall back to the reference instead of being written differently."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflowdsl import ir
from mlflowdsl.compiler import plan_text
from mlflowdsl.compiler.api import compile_file, compile_text
from mlflowdsl.canonical_json import dumps as dumps_indented
from mlflowdsl.compiler.render.plan_json import render_json_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*") if p.suffix in (".mlw", ".json"))


def reference_text(plan: ir.Plan) -> str:
    return dumps_indented(plan.canonical_dict())


def plan_with(params: dict, **task_fields) -> ir.Plan:
    tasks = [ir.Task(id="a", type="custom", uses="m:f", params=params, **task_fields),
             ir.Task(id="b", type="custom", uses="m:f", dependencies=["a"], params=params,
                     span=ir.SourceSpan(file="w.mlw", line=1, column=1, end_line=2, end_column=3))]
    tuning = ir.Tuning(task="a", search=[ir.SearchDim(name="x", kind="float", low=0.1, high=1.0)],
                       objective=ir.Objective(direction="maximize", metric="accuracy"),
                       span=ir.SourceSpan(file="w.mlw", line=3, column=1, end_line=3, end_column=9))
    return ir.Plan(workflow=ir.Workflow(id="w", params={"p": [1, "x"]}, source="w.mlw"), tasks=tasks,
                   tunings=[tuning])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_takes_the_fast_path_and_matches_the_reference(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    plan = compile_file(path.relative_to(ROOT).as_posix()).raise_for_errors()
    assert plan_text.fingerprint(plan) == plan.compute_fingerprint() == plan.fingerprint
    assert plan_text.indented(plan) == reference_text(plan)


TASK_MODULE = """
from stdlib_tasks.values import Dataset

def f(data: Dataset | None = None, parts: list[Dataset] | None = None, x: float = 0.0, y: int = 0,
      z: list | None = None, m: dict | None = None, l: list | None = None, name: str = "") -> Dataset:
    return data
"""


def test_a_workflow_of_many_kinds_of_values_matches_the_reference(tmp_path, monkeypatch):
    (tmp_path / "plan_text_tasks.py").write_text(TASK_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # a custom task's module must lie in the project (docs/operations.md, "Security")
    plan = compile_text('''
workflow w {
  params { names: list[str] = ["é", "tab\\there", "quote\\"", "%s"] }
  defaults { retry { attempts = 3 } timeout = 90s }
  task a: custom { uses = "plan_text_tasks:f"  x = 1.5  y = -0  z = [true, false, null]  m = { k = "v", "n" = { } }  l = [] }
  task b: custom foreach n in params.names { uses = "plan_text_tasks:f"  data = a.output  name = n  cache = none }
  task c: custom after b { uses = "plan_text_tasks:f"  parts = b[*].output }
}''', "w.mlw").raise_for_errors()
    assert plan_text.fingerprint(plan) == plan.compute_fingerprint() == plan.fingerprint
    assert plan_text.indented(plan) == reference_text(plan)


@pytest.mark.parametrize("params", [
    {"t": (1, 2)},  # the JSON dump makes a list of a tuple
    {"k": {1: "one"}},  # ... a str of a non-str key
    {"k": {1: "one", "a": "two"}},  # keys that do not even sort
    {"x": float("inf")},  # ... null of inf
    {"d": dt.date(2024, 1, 2)},  # ... a string of a YAML date
], ids=["tuple", "int key", "mixed keys", "inf", "date"])
def test_values_the_json_dump_converts_fall_back_to_the_reference(params):
    plan = plan_with(params)
    assert plan_text.fingerprint(plan) is None
    assert plan_text.indented(plan) is None
    assert render_json_plan(plan) == reference_text(plan) + "\n"  # still written, by the reference


def test_a_non_finite_timeout_falls_back_to_the_reference_and_its_error():
    plan = plan_with({}, timeout=float("inf"))
    assert plan_text.fingerprint(plan) is None
    with pytest.raises(ValueError, match="Out of range float"):
        reference_text(plan)
    with pytest.raises(ValueError, match="Out of range float"):
        render_json_plan(plan)


def test_a_field_this_module_does_not_know_falls_back(monkeypatch):
    monkeypatch.setattr(plan_text, "TASK_FIELDS", plan_text.TASK_FIELDS[:-1])
    assert plan_text.fingerprint(plan_with({})) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5), st.none() | st.floats(0, 1e6))
def test_any_plain_json_params_give_the_reference_bytes(params, timeout):
    plan = plan_with(params, timeout=timeout)
    assert plan_text.fingerprint(plan) == plan.compute_fingerprint()
    assert plan_text.indented(plan) == reference_text(plan)


def test_a_plan_without_tasks_matches_the_reference():
    plan = ir.Plan(workflow=ir.Workflow(id="w"))
    assert plan_text.fingerprint(plan) == plan.compute_fingerprint()
    assert plan_text.indented(plan) == reference_text(plan)


def test_a_value_to_fall_back_on_after_the_first_batch_of_tasks_still_falls_back():
    tasks = [ir.Task(id=f"t{i}", type="custom", params={"n": i}) for i in range(plan_text._BATCH + 5)]
    tasks.append(ir.Task(id="last", type="custom", params={"n": (1,)}))
    plan = ir.Plan(workflow=ir.Workflow(id="w"), tasks=tasks)
    assert plan_text.fingerprint(plan) is None
    ok = plan.model_copy(update={"tasks": tasks[:-1]})
    assert plan_text.fingerprint(ok) == ok.compute_fingerprint()


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5), st.text(), st.none() | st.text(), st.text())
def test_the_cache_key_part_around_the_params_text_is_the_reference_one(params, impl, uses, cache_version):
    text = plan_text.params_text(params)
    assert text == ir.canonical_dumps(params, indent=None)
    assert (plan_text.key_part("custom", impl, uses, params, text, cache_version)
            == ir.key_part("custom", impl, uses, params, cache_version))


def test_the_plan_keeps_the_task_objects_the_params_texts_are_keyed_by():
    task = ir.Task(id="a", type="custom", params={"n": 1})
    plan = ir.Plan(workflow=ir.Workflow(id="w"), tasks=[task])
    assert plan.tasks[0] is task
    wrong = plan_text.fingerprint(plan, {id(task): '{"n":2}'})  # proves the text is used
    assert wrong != plan.compute_fingerprint() == plan_text.fingerprint(plan, {id(task): '{"n":1}'})
