"""Property tests: mutated inputs only ever produce diagnostics; compilation is
deterministic (also when task declarations are shuffled); formatting keeps the plan."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.compiler.fmt import format_text
from mlflowdsl.grammar.diagnostics import CODES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {p.name: p.read_text() for p in sorted((ROOT / "examples").glob("*")) if p.suffix in (".mlw", ".json")}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = ["{", "}", "[", "]", "(", ")", "=", ".", ",", ":", '"', "${", "after", "task", "foreach", "in", "when",
          "params.", "x", "1", "-2.5", "4GiB", "10zz", "true", "null", "*", "#", "\n", "tune", "use", "template",
          "output", '"""', "\\", "workflow", "import", "mlw 1"]


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SOURCES)))
    text = SOURCES[name]
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup_line"]))
        if kind == "insert":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 12)):]
        elif kind == "replace":
            text = text[:pos] + draw(st.text(min_size=1, max_size=3)) + text[pos + 1:]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            lines.insert(i, lines[i] if lines else "")
            text = "".join(lines)
    return name, text


@FAST
@given(mutated())
def test_mutated_inputs_yield_diagnostics_not_exceptions(case):
    name, text = case
    # examples/ is the base directory so that imports in templated.mlw still resolve
    result = compile_text(text, str(ROOT / "examples" / name))
    assert all(d.code in CODES for d in result.diagnostics)
    if result.ok:
        assert result.plan is not None and result.plan.fingerprint == result.plan.compute_fingerprint()
    else:
        assert result.plan is None


@FAST
@given(st.lists(st.sampled_from(["{", "}", '"a"', "1", "x", ":", "[", "]", "$ref", "tasks", "task_id",
                                 "workflow_id", ",", "null", "true"]), max_size=30))
def test_random_json_documents_yield_diagnostics(pieces):
    result = compile_text("{" + " ".join(pieces), "w.json")
    assert all(d.code in CODES for d in result.diagnostics)


@st.composite
def workflows(draw):
    """A random DAG of tasks as (declarations in dependency order, a shuffled order)."""
    n = draw(st.integers(1, 8))
    decls = ['  task t0: data_preprocessing { source = "sklearn:iris"  seed = params.seed }']
    for i in range(1, n):
        data = draw(st.integers(0, i - 1))
        extra = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True))
        after = [f"t{j}" for j in extra if j != data]
        method = draw(st.sampled_from(["pca", "select_k_best", "variance_threshold"]))
        k = draw(st.integers(1, 20))
        header = f"  task t{i}: feature_extraction" + (f" after {', '.join(after)}" if after else "")
        decls.append(f'{header} {{ data = t{data}.output  method = "{method}"  k = {k} }}')
    order = draw(st.permutations(range(n)))
    return decls, [decls[i] for i in order]


def render_workflow(decls: list[str]) -> str:
    return "workflow gen {\n  params { seed: int = 3 }\n" + "\n".join(decls) + "\n}\n"


@FAST
@given(workflows())
def test_compile_is_deterministic_and_independent_of_declaration_order(case):
    decls, shuffled = case
    a = compile_text(render_workflow(decls), "gen.mlw")
    b = compile_text(render_workflow(decls), "gen.mlw")
    c = compile_text(render_workflow(shuffled), "gen.mlw")
    assert a.ok and b.ok and c.ok
    assert a.plan.canonical_json() == b.plan.canonical_json()  # byte-identical
    assert a.plan.fingerprint == c.plan.fingerprint
    assert a.plan.canonical_dict(spans=False) == c.plan.canonical_dict(spans=False)


@FAST
@given(workflows())
def test_formatting_keeps_the_plan(case):
    _, shuffled = case
    text = render_workflow(shuffled)
    formatted = format_text(text, "gen.mlw")
    assert compile_text(formatted, "gen.mlw").plan.fingerprint == compile_text(text, "gen.mlw").plan.fingerprint


def test_formatting_keeps_the_plan_of_every_example():
    for name, text in SOURCES.items():
        if not name.endswith(".mlw"):
            continue
        file = str(ROOT / "examples" / name)
        before = compile_text(text, file)
        after = compile_text(format_text(text, file), file)
        assert before.ok and after.ok
        assert after.plan.fingerprint == before.plan.fingerprint, name


def test_json_output_of_examples_is_stable_across_compiles():
    for name, text in SOURCES.items():
        file = str(ROOT / "examples" / name)
        first = compile_text(text, file).plan.canonical_json()
        assert compile_text(text, file).plan.canonical_json() == first
        json.loads(first)


def test_output_does_not_depend_on_hash_randomization():
    import os
    import subprocess
    import sys

    script = (
        "import glob\n"
        "from mlflowdsl.compiler.api import compile_file\n"
        "from mlflowdsl.compiler.render import render\n"
        "for f in sorted(glob.glob('examples/*.mlw')) + sorted(glob.glob('examples/*.json')):\n"
        "    p = compile_file(f).plan\n"
        "    print(render(p), render(p, 'dot'), render(p, 'mermaid'))\n"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=True)
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1000
