"""The formatter: idempotent, AST-preserving (hypothesis), comments kept in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mlflowdsl.compiler.fmt import format_module, format_text
from mlflowdsl.grammar.parser import parse_text
from mlw_strategies import programs, strip_spans

# More programs for a deeper search: MLW_FMT_EXAMPLES=2000 pytest tests/unit/test_fmt.py
N_PROGRAMS = int(os.environ.get("MLW_FMT_EXAMPLES", "150"))
EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").rglob("*.mlw"))


@settings(max_examples=N_PROGRAMS, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_format_is_idempotent_and_keeps_the_ast(text):
    module = parse_text(text, "p.mlw")
    once = format_module(module)
    again = parse_text(once, "p.mlw")
    assert strip_spans(again) == strip_spans(module)
    assert format_module(again) == once


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_format_idempotently_and_keep_their_ast(path):
    text = path.read_text(encoding="utf-8")
    once = format_text(text, str(path))
    assert format_text(once, str(path)) == once
    assert strip_spans(parse_text(once, str(path))) == strip_spans(parse_text(text, str(path)))


def test_there_are_examples_to_check():
    assert len(EXAMPLES) >= 5


def test_canonical_layout():
    src = (
        'mlw 1\nimport "a.mlw"\nimport "b.mlw"\n'
        "workflow w{name=\"n\" version=\"1\"\n"
        "params{seed:int=1 rate:float=0.2 in 0..1 env:str=\"dev\" in [\"dev\",\"prod\"] lr:float}\n"
        "task a:custom after b,c foreach x in params.xs{uses=\"m:f\" resources{cpu=2 memory=4GiB}"
        " retry{}}\n"
        "task e:custom{}\n"
        "use u=t(a=1,b=x.output)\n}"
    )
    assert format_text(src) == (
        "mlw 1\n"
        "\n"
        'import "a.mlw"\n'
        'import "b.mlw"\n'
        "\n"
        "workflow w {\n"
        '  name    = "n"\n'
        '  version = "1"\n'
        "\n"
        "  params {\n"
        "    seed: int   = 1\n"
        "    rate: float = 0.2 in 0..1\n"
        '    env:  str   = "dev" in ["dev", "prod"]\n'
        "    lr:   float\n"
        "  }\n"
        "\n"
        "  task a: custom after b, c foreach x in params.xs {\n"
        '    uses = "m:f"\n'
        "    resources { cpu = 2  memory = 4GiB }\n"
        "    retry { }\n"
        "  }\n"
        "\n"
        "  task e: custom { }\n"
        "\n"
        "  use u = t(a = 1, b = x.output)\n"
        "}\n"
    )


def test_long_maps_and_lists_open_up_one_entry_per_line():
    long = ", ".join(f"k{i} = {i}" for i in range(20))
    items = ", ".join(f'"item{i}"' for i in range(20))
    out = format_text(f"workflow w {{ task a: custom {{ h = {{ {long} }} l = [{items}] }} }}")
    assert "    h = {\n      k0  = 0\n      k1  = 1\n" in out
    assert '    l = [\n      "item0",\n      "item1",\n' in out and '      "item19",\n    ]\n' in out


def test_comments_stay_in_place():
    src = (
        "# file header\n"
        "\n"
        "workflow w { # after the brace\n"
        "  # before a\n"
        "  task a: custom {\n"
        '    uses = "m:f"   # mlw: ignore[MLW401]\n'
        "    resources {\n"
        "      cpu = 2 # two cores\n"
        "    }\n"
        "    # last in a\n"
        "  }\n"
        "} # end\n"
        "# trailer\n"
    )
    assert format_text(src) == (
        "# file header\n"
        "\n"
        "workflow w {  # after the brace\n"
        "  # before a\n"
        "  task a: custom {\n"
        '    uses = "m:f"  # mlw: ignore[MLW401]\n'
        "    resources {\n"
        "      cpu = 2  # two cores\n"
        "    }\n"
        "    # last in a\n"
        "  }\n"
        "}  # end\n"
        "# trailer\n"
    )


def test_strings_round_trip_escapes_interpolation_and_triple_quotes():
    src = 'workflow w { a = "q\\"\\\\ ${params.x} \\${lit} \\u00e9\\t" b = """two\nlines "quoted" \\"""" }'
    out = format_text(src)
    assert 'a = "q\\"\\\\ ${params.x} \\${lit} é\\t"' in out
    assert strip_spans(parse_text(out)) == strip_spans(parse_text(src))


def test_parentheses_are_kept_where_precedence_needs_them():
    out = format_text("workflow w { when = (a or b) and not (c == 1) x = a or (b or c) y = not not a }")
    assert "when = (a or b) and not c == 1" in out
    assert "x    = a or (b or c)" in out
    assert "y    = not not a" in out


def test_doctests():
    import doctest

    import mlflowdsl.compiler.fmt as fmt

    result = doctest.testmod(fmt)
    assert result.attempted > 0 and result.failed == 0
