"""Syntax-level diagnostics: one test per MLW1xx code (code, line, column — not prose), error
recovery, and hypothesis: random or mutated text only ever raises ``CompileError``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflowdsl.errors import CompileError
from mlflowdsl.grammar.diagnostics import render_text
from mlflowdsl.grammar.parser import parse_file, parse_text
from mlw_strategies import programs

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples").rglob("*.mlw"))


def errors(text: str) -> list[tuple[str, int, int]]:
    with pytest.raises(CompileError) as info:
        parse_text(text, "e.mlw")
    return [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics]


# ----------------------------------------------------------------------------- MLW101


def test_missing_equals_after_attribute_name():
    assert errors("workflow w {\n  task a: custom {\n    n_estimators 200\n  }\n}") == [("MLW101", 3, 18)]


def test_missing_equals_message_names_the_attribute():
    with pytest.raises(CompileError) as info:
        parse_text("workflow w { task a: custom { n_estimators 200 } }")
    assert "`n_estimators`" in info.value.diagnostics[0].message


def test_missing_closing_brace_at_end_of_file_points_at_the_open_brace():
    assert errors("workflow w {\n  task a: custom {\n    x = 1\n}") == [("MLW101", 1, 12)]


def test_missing_closing_brace_before_the_next_task():
    assert errors("workflow w {\n  task a: custom {\n    x = 1\n\n  task b: custom { }\n}") == [("MLW101", 5, 3)]


def test_task_header_without_a_type():
    assert errors("workflow w {\n  task train {\n  }\n}") == [("MLW101", 2, 14)]
    assert errors("workflow w { task train: { } }") == [("MLW101", 1, 26)]


def test_missing_value_and_stray_closing_brace():
    assert errors("workflow w { x = }") == [("MLW101", 1, 18)]
    assert errors("workflow w { }\n}") == [("MLW101", 2, 1)]


def test_unexpected_character():
    assert errors("workflow w {\n  x = 1 @\n}") == [("MLW101", 2, 9)]
    assert errors("workflow w { x = 'single' }")[0] == ("MLW101", 1, 18)


def test_keyword_used_as_a_name():
    assert errors("workflow w { task task: custom { } }") == [("MLW101", 1, 19)]


def test_block_outside_a_task():
    assert errors("workflow w {\n  resources { cpu = 1 }\n}") == [("MLW101", 2, 13)]


def test_several_errors_are_reported_in_one_go():
    text = (
        "workflow w {\n"
        "  task a: custom { x 1 }\n"
        "  task b: custom { y = 2 }\n"
        "  task c: custom { z 3 }\n"
        "  task d: custom { w = }\n"
        "}\n"
    )
    assert errors(text) == [("MLW101", 2, 22), ("MLW101", 4, 22), ("MLW101", 5, 24)]


def test_messages_say_what_was_found_and_expected_in_words():
    with pytest.raises(CompileError) as info:
        parse_text("workflow w { task a: custom { x = [1, 2 } }", "e.mlw")
    d = info.value.diagnostics[0]
    assert (d.line if hasattr(d, "line") else d.span.line, d.span.column) == (1, 41)
    assert "`}`" in d.message and "`]`" in d.message and "RSQB" not in d.message


# ----------------------------------------------------------------------------- MLW102


def test_invalid_escape():
    assert errors('workflow w {\n  x = "a\\qb"\n}') == [("MLW102", 2, 9)]


def test_unterminated_string_and_parsing_goes_on():
    assert errors('workflow w {\n  x = "abc\n  y = 2\n  z 3\n}') == [("MLW102", 2, 7), ("MLW101", 4, 5)]


def test_unterminated_triple_string():
    assert errors('workflow w {\n  x = """abc\n  y = 2\n}') == [("MLW102", 2, 7)]


def test_bad_interpolations():
    assert errors('workflow w { x = "a ${} b" }') == [("MLW102", 1, 21)]
    assert errors('workflow w { x = "a ${p.q" }') == [("MLW102", 1, 21)]
    assert errors('workflow w { x = "${train[rf]}" }') == [("MLW102", 1, 21)]


def test_lone_surrogate_escape():
    assert errors('workflow w { x = "\\ud83d" }')[0][0] == "MLW102"


def test_interpolation_in_import_path():
    assert errors('import "${x}.mlw"\nworkflow w { }') == [("MLW102", 1, 8)]


# ----------------------------------------------------------------------------- MLW103


def test_unknown_unit_points_at_the_unit_and_lists_the_units_of_its_kind():
    with pytest.raises(CompileError) as info:
        parse_text("workflow w {\n  task a: custom {\n    resources { memory = 4Gx }\n  }\n}", "e.mlw")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("MLW103", 3, 27)
    assert all(u in d.hint for u in ("KiB", "MiB", "GiB", "GB"))
    assert errors("workflow w { timeout = 10min }") == [("MLW103", 1, 26)]


# ----------------------------------------------------------------------------- MLW104, 105, 107, 209


def test_unsupported_version_header():
    assert errors("mlw 2\nworkflow w { }") == [("MLW104", 1, 5)]
    assert errors("mlw 1.5\nworkflow w { }") == [("MLW104", 1, 5)]


def test_unreadable_files(tmp_path):
    with pytest.raises(CompileError) as info:
        parse_file(tmp_path / "missing.mlw")
    (d,) = info.value.diagnostics
    assert d.code == "MLW105" and d.subject == str(tmp_path / "missing.mlw")
    bad = tmp_path / "latin1.mlw"
    bad.write_bytes("workflow w { name = \"caf\xe9\" }".encode("latin-1"))
    with pytest.raises(CompileError) as info:
        parse_file(bad)
    assert info.value.diagnostics[0].code == "MLW105"
    with pytest.raises(CompileError) as info:
        parse_file(tmp_path)  # a directory
    assert info.value.diagnostics[0].code == "MLW105"


def test_file_without_workflow_or_template():
    assert errors("") == [("MLW107", 1, 1)]
    assert errors("# only a comment\nimport \"x.mlw\"\n") == [("MLW107", 1, 1)]


def test_second_workflow_in_one_file():
    assert errors("workflow a { }\nworkflow b { }") == [("MLW209", 2, 10)]


def test_diagnostics_render_with_a_caret():
    text = "workflow w { task a: custom { n_estimators 200 } }"
    with pytest.raises(CompileError) as info:
        parse_text(text, "e.mlw")
    out = render_text(info.value.diagnostics, {"e.mlw": text})
    assert out.splitlines()[1] == "  --> e.mlw:1:44"
    assert out.splitlines()[4].endswith("^^^ write `n_estimators = ...` (or `n_estimators { ... }` for a block)")


# ----------------------------------------------------------------------------- properties


def _only_our_diagnostics(text: str) -> None:
    try:
        parse_text(text, "fuzz.mlw")
    except CompileError as e:
        assert e.diagnostics
        for d in e.diagnostics:
            assert d.code.startswith("MLW1") or d.code == "MLW209", d
            assert d.span is not None and d.span.line >= 1 and d.span.column >= 1
            assert (d.span.line, d.span.column) <= (d.span.end_line, d.span.end_column)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_raises_compile_errors(text):
    _only_our_diagnostics(text)


SOUP = list('{}[](),.=:"#\n *-0123456789') + ["task", "workflow", "x", "a", '"""', "params", "in", "..", "GiB", "${"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SOUP), max_size=40).map("".join))
def test_random_token_soup_only_raises_compile_errors(text):
    _only_our_diagnostics(text)


mutations = st.lists(
    st.tuples(st.sampled_from(["delete", "insert", "swap"]), st.integers(0, 10**6),
              st.sampled_from(list('{}[]()=,."\\$:#\n x1')) | st.characters()),
    min_size=1, max_size=4,
)


def _mutate(text: str, ops) -> str:
    for op, pos, ch in ops:
        if not text:
            text = ch
            continue
        i = pos % len(text)
        if op == "delete":
            text = text[:i] + text[i + 1:]
        elif op == "insert":
            text = text[:i] + ch + text[i:]
        else:
            j = (i + 1) % len(text)
            chars = list(text)
            chars[i], chars[j] = chars[j], chars[i]
            text = "".join(chars)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), mutations)
def test_mutated_programs_only_raise_compile_errors(text, ops):
    _only_our_diagnostics(_mutate(text, ops))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@settings(max_examples=60, deadline=None)
@given(ops=mutations)
def test_mutated_examples_only_raise_compile_errors(path, ops):
    _only_our_diagnostics(_mutate(path.read_text(encoding="utf-8"), ops))


def test_common_mistakes_get_pointed_messages():
    cases = {
        "workflow w { task a: custom { x = train[*] } }": (1, 44, "field"),
        "workflow w { task a: custom { when = params.x = 1 } }": (1, 47, "`=`"),
        "workflow w { task a: custom { resources { cpu: 2 } } }": (1, 46, "`cpu`"),
        "workflow w {\n  task a: custom {": (2, 18, "task `a`"),
        "workflow w {": (1, 12, "workflow `w`"),
    }
    for text, (line, column, words) in cases.items():
        with pytest.raises(CompileError) as info:
            parse_text(text, "e.mlw")
        (d,) = info.value.diagnostics
        assert (d.code, d.span.line, d.span.column) == ("MLW101", line, column), text
        assert words in d.message, (text, d.message)
