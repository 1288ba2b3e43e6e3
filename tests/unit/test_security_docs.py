"""docs/operations.md "Security" names a test for each rule: every test it names exists (a
``file.py::name`` reference, or ``::name`` after one, for the same file)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _section() -> str:
    text = (REPO / "docs" / "operations.md").read_text()
    start = text.index("## Security\n")
    return text[start:text.index("\n## ", start + 1)]


def test_every_test_the_security_section_names_exists():
    refs = re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", _section())
    current = None
    checked = 0
    for ref in refs:
        path, _, name = ref.partition("::")
        if path:
            current = REPO / path
            assert current.is_file(), path
        if name:
            assert current is not None, ref
            names = {n.name for n in ast.walk(ast.parse(current.read_text())) if isinstance(n, ast.FunctionDef)}
            assert name in names, f"{current.relative_to(REPO)} has no test {name}"
        checked += 1
    assert checked >= 15
