"""The TextMate grammar (editors/vscode/syntaxes/mlw.tmLanguage.json) tokenizes every example,
checked against the compiler's own parse: each keyword, name, string, number, quantity unit
and comment the parser sees gets its scope from the grammar (textmate-grammar-python, a port
of vscode-textmate's tokenizer, with Oniguruma regexes)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
from textmate_grammar.parsers.base import LanguageParser

from mlflowdsl.grammar import ast
from mlflowdsl.grammar.parser import parse_text

from lsp_support import EXAMPLES, REPO_ROOT

GRAMMAR = REPO_ROOT / "editors" / "vscode" / "syntaxes" / "mlw.tmLanguage.json"
FILES = sorted(EXAMPLES.rglob("*.mlw"))
SNIPPET = '''mlw 1
# every construct once  # mlw: ignore[MLW401]
import "lib/x.mlw"
template pair(data, algo: str = "svm") {
  task train: model_training { data = data  algorithm = algo }
  output model = train.model
}
workflow w {
  description = """a "triple" string"""
  params {
    n:     int = 12 in 1..500
    names: list[str] = ["a", "b\\tc", "\\${literal}"]
    env:   str = "dev" in ["dev", "prod"]
  }
  defaults { retry { attempts = 2  initial = 500ms  max = 1.5m } }
  task prep: data_preprocessing { source = "sklearn:iris"  seed = -3 }
  task t: model_training after prep foreach a in params.names {
    algorithm = "${a}"
    hyperparameters = { max_depth = 3, learning_rate = 1e-3 }
    resources { memory = 4GiB  network = 1Gbps }
    when = params.n > 3 and not false
  }
  use u = pair(data = prep.output)
  tune t { search { max_depth = int(1, 5, step = 1) } objective = maximize(accuracy) }
}
'''

logging.getLogger("textmate_grammar").setLevel(logging.ERROR)  # it logs each unscoped stretch


@pytest.fixture(scope="module")
def tokenizer() -> LanguageParser:
    return LanguageParser(json.loads(GRAMMAR.read_text()))


def scopes_by_position(parser: LanguageParser, text: str) -> dict[tuple[int, int], list[str]]:
    """(1-based line, 1-based column) -> the scopes of the token covering that character."""
    out: dict[tuple[int, int], list[str]] = {}
    for (line, col), token, scopes in parser.parse_string(text).flatten():
        for i in range(len(token)):
            out[(line + 1, col + 1 + i)] = scopes
    return out


def nodes(node) -> list:
    """Every AST node under ``node`` (itself included)."""
    found, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Node):
            found.append(n)
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n))
        elif isinstance(n, tuple):
            stack.extend(n)
    return found


def expected_scopes(module: ast.Module, text: str) -> list[tuple[tuple[int, int], str, str]]:
    """(position, scope that must be there, what it is) from the parse."""
    want = []
    lines = text.split("\n")

    def at(span, scope, what):
        want.append(((span.line, span.column), scope, what))

    for n in nodes(module):
        if isinstance(n, ast.Task):
            at(n.span, "keyword.other.task.mlw", "task keyword")
            at(n.id_span, "entity.name.function.task.mlw", f"task id {n.id}")
            at(n.type_span, "entity.name.type.task-type.mlw", f"task type {n.type}")
        elif isinstance(n, ast.Workflow):
            at(n.span, "keyword.other.workflow.mlw", "workflow keyword")
            at(n.id_span, "entity.name.namespace.workflow.mlw", "workflow id")
        elif isinstance(n, ast.Template):
            at(n.span, "keyword.other.template.mlw", "template keyword")
            at(n.name_span, "entity.name.type.template.mlw", "template name")
        elif isinstance(n, ast.Import):
            at(n.span, "keyword.control.mlw", "import keyword")
            at(n.path_span, "string.quoted.double.mlw", "import path")
        elif isinstance(n, ast.ParamDecl):
            at(n.name_span, "variable.parameter.mlw", f"parameter {n.name}")
        elif isinstance(n, ast.Str):
            at(n.span, "string.quoted.triple.mlw" if n.triple else "string.quoted.double.mlw", "string")
        elif isinstance(n, (ast.Int, ast.Float)):
            at(n.span, "constant.numeric.mlw", f"number {lines[n.span.line - 1][n.span.column - 1:]}")
        elif isinstance(n, ast.Quantity):
            at(n.span, "constant.numeric.quantity.mlw", f"quantity {n.raw}")
            unit_col = n.span.column + len(n.raw) - len(n.unit)
            want.append(((n.span.line, unit_col), "keyword.other.unit.mlw", f"unit of {n.raw}"))
        elif isinstance(n, ast.Bool):
            at(n.span, "constant.language.mlw", "boolean")
    for c in module.comments:
        at(c.span, "comment.line.number-sign.mlw", "comment start")
        want.append(((c.span.line, c.span.end_column - 1), "comment.line.number-sign.mlw", "comment end"))
    return want


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_every_example_gets_the_scopes_of_its_parse(tokenizer: LanguageParser, path: Path):
    _check(tokenizer, path.read_text(), str(path))


def test_a_snippet_with_every_construct(tokenizer: LanguageParser):
    _check(tokenizer, SNIPPET, "snippet.mlw")
    got = scopes_by_position(tokenizer, SNIPPET)
    lines = SNIPPET.split("\n")

    def scopes_of(needle: str, offset: int = 0) -> list[str]:
        row = next(i for i, line in enumerate(lines) if needle in line)
        return got[(row + 1, lines[row].index(needle) + 1 + offset)]

    assert "keyword.other.directive.mlw" in scopes_of("ignore[")
    assert "keyword.operator.range.mlw" in scopes_of("..500")
    assert "constant.numeric.mlw" in scopes_of("500")
    assert "constant.character.escape.mlw" in scopes_of("\\tc")
    assert "constant.character.escape.mlw" in scopes_of("\\${literal}")
    assert "meta.interpolation.mlw" in scopes_of("${a}", 2)
    assert "variable.other.param.mlw" in scopes_of("params.names", 7)
    assert "variable.language.params.mlw" in scopes_of("params.names")
    assert "keyword.control.mlw" in scopes_of("after prep")
    assert "keyword.operator.logical.mlw" in scopes_of("and not")
    assert "support.function.mlw" in scopes_of("maximize(")


def test_an_unknown_unit_is_marked_invalid(tokenizer: LanguageParser):
    text = "workflow w {\n  task t: model_training { timeout = 5mins }\n}\n"
    got = scopes_by_position(tokenizer, text)
    assert "invalid.illegal.unit.mlw" in got[(2, text.split("\n")[1].index("mins") + 1)]


def _check(tokenizer: LanguageParser, text: str, name: str) -> None:
    module = parse_text(text, name)
    got = scopes_by_position(tokenizer, text)
    want = expected_scopes(module, text)
    assert len(want) > 10
    wrong = [(pos, scope, what, got.get(pos)) for pos, scope, what in want if scope not in got.get(pos, [])]
    assert not wrong, wrong[:5]
    invalid = [(pos, s) for pos, s in got.items() if any(x.startswith("invalid") for x in s)]
    assert not invalid, invalid[:5]
