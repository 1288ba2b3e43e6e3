"""The incremental re-parse (mlflowdsl/lsp/incremental.py) gives exactly the full parse's module
for every edit it accepts, refuses every edit that breaks the file, and is taken for the
ordinary edit inside a task."""

from __future__ import annotations

import pytest

from mlflowdsl.errors import CompileError
from mlflowdsl.grammar.parser import parse_text
from mlflowdsl.lsp.incremental import reparse

from lsp_support import EXAMPLES

FILES = [EXAMPLES / "fraud_detection.mlw", EXAMPLES / "templated.mlw", EXAMPLES / "tuning.mlw"]


def edits(text: str):
    """Single edits all over the text: on every line, insert a letter, delete a character or
    replace one by `=` (in turn), in the middle of the line; every fifth line also a newline."""
    offset = 0
    for i, line in enumerate(text.split("\n")):
        at = offset + len(line) // 2
        yield (text[:at] + "q" + text[at:], text[:at] + text[at + 1:], text[:at] + "=" + text[at + 1:])[i % 3]
        if i % 5 == 0:
            yield text[:at] + "\n" + text[at:]
        offset += len(line) + 1


def full(text: str, file: str):
    try:
        return parse_text(text, file)
    except CompileError:
        return None


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_reparse_equals_the_full_parse(path):
    old = path.read_text()
    module = parse_text(old, str(path))
    taken = refused_bad = 0
    for new in edits(old):
        got = reparse(old, module, new)
        want = full(new, str(path))
        if got is not None:
            assert want is not None, "accepted an edit that breaks the file"
            assert got == want
            taken += 1
        elif want is None:
            refused_bad += 1
    assert taken > 10 and refused_bad > 5, (taken, refused_bad)


def test_an_edit_inside_a_task_value_is_incremental():
    path = EXAMPLES / "fraud_detection.mlw"
    old = path.read_text()
    new = old.replace("n_estimators = 50", "n_estimators = 60")
    got = reparse(old, parse_text(old, str(path)), new)
    assert got is not None and got == parse_text(new, str(path))
    # a new line inside a task: the later items (and comments) move down one line
    new = old.replace("    seed            = params.seed\n", "    seed            = params.seed\n\n", 1)
    got = reparse(old, parse_text(old, str(path)), new)
    assert got is not None and got == parse_text(new, str(path))
    # an edit across two items is parsed in full
    across = old.replace("  }\n\n  # A small Bayesian", "  # A small Bayesian", 1)
    assert across != old and reparse(old, parse_text(old, str(path)), across) is None


def test_lines_added_or_removed_move_what_follows_the_workflow_too():
    old = ('workflow w {\n  task prep: data_preprocessing {\n    source = "x.csv"  # a comment\n  }\n'
           '  use a = tr(data = prep.output)  # after\n}\n# tail comment\n'
           'template tr(data) {\n  task train: model_training { data = data }\n  output model = train.model\n}\n')
    module = parse_text(old, "w.mlw")
    for new in (old.replace('source = "x.csv"', 'source = "x.csv"\n    seed = 3\n'),
                old.replace('    source = "x.csv"  # a comment\n', "")):
        got = reparse(old, module, new)
        assert got is not None and got == parse_text(new, "w.mlw")
        assert got.templates[0].span.line == parse_text(new, "w.mlw").templates[0].span.line != 8
