"""Snapshots of the compiled plan (canonical JSON and DOT) of every example.

The snapshot files live in ``__snapshots__/test_plan_snapshots/`` as plain .json/.dot files;
read a changed one before accepting it (``pytest --snapshot-update``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from mlflowdsl.compiler.api import compile_file
from mlflowdsl.compiler.render import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").glob("*")
                  if p.suffix in (".mlw", ".json"))


class JSONText(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "json"


class DOTText(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "dot"


@pytest.fixture
def compiled(request, monkeypatch):
    # Compile from the repository root with relative paths, so the spans in the snapshots
    # do not depend on where the checkout lives.
    monkeypatch.chdir(ROOT)
    result = compile_file(request.param)
    assert result.ok, [(d.code, d.message) for d in result.errors]
    return result.plan


def test_there_are_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("compiled", EXAMPLES, indirect=True, ids=[Path(e).name for e in EXAMPLES])
def test_plan_json(compiled, snapshot):
    assert render(compiled, "json") == snapshot(extension_class=JSONText)


@pytest.mark.parametrize("compiled", EXAMPLES, indirect=True, ids=[Path(e).name for e in EXAMPLES])
def test_plan_dot(compiled, snapshot):
    assert render(compiled, "dot") == snapshot(extension_class=DOTText)
