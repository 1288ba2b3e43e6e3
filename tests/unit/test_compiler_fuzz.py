"""Fuzzing the whole compiler (issue 14, points 6 and 7): every input, however mangled, ends
in a plan or in diagnostics with a place, never in another exception, and within bounded time.

Two generators: mutations of the committed seed corpus (``fuzz_corpus/``: `.mlw`, JSON and
YAML workflows) with hostile tokens spliced in (``fuzz_inputs.py``), and JSON documents whose
values hypothesis draws from every JSON type. ``bench/fuzz_compiler.py`` runs the same
mutations for longer and records its figures in bench/RESULTS.md.
"""

from __future__ import annotations

import json
import random

import pytest
from fuzz_inputs import HOSTILE, check, mutate, seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflowdsl.compiler.api import compile_text

SEEDS = seeds()
PER_INPUT_SECONDS = 10  # generous under a loaded machine; typical inputs take milliseconds


def assert_clean(text: str, file: str) -> None:
    problem, took = check(text, file)
    assert problem is None, f"{file}: {problem}\ninput: {text[:2000]!r}"
    assert took < PER_INPUT_SECONDS, f"{file}: {took:.1f} s\ninput: {text[:2000]!r}"


def test_the_seeds_compile():
    # the corpus is valid, so mutations start from programs that reach every pass
    for name, text in SEEDS:
        problem, _ = check(text, name)
        assert problem is None
        assert compile_text(text, name).ok, name


@pytest.mark.parametrize("name, text", SEEDS, ids=[n for n, _ in SEEDS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_seeds_end_in_diagnostics_or_a_plan(name, text, seed):
    assert_clean(mutate(text, random.Random(seed)), name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(HOSTILE),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(
        ["$ref", "task_id", "memory", "var", "in", "strategy", "type", "min", "max"]), inner, max_size=4),
    max_leaves=12,
)
task_keys = st.sampled_from(["task_id", "task_type", "dependencies", "parameters", "resources", "cache", "retry",
                             "timeout", "domain", "when", "foreach", "bogus"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(task_keys, json_values, max_size=6), max_size=3),
       st.dictionaries(st.text(max_size=6), json_values, max_size=3), json_values)
def test_json_documents_with_any_values_end_in_diagnostics_or_a_plan(tasks, params, extra):
    base = [{"task_id": "prep", "task_type": "data_preprocessing", "parameters": {"source": "sklearn:iris"}}]
    doc = {"workflow_id": "w", "global_parameters": params, "defaults": extra, "tasks": base + tasks}
    assert_clean(json.dumps(doc), "fuzz.json")
