"""A long-lived worker runs a custom task's edited code (issue 19's warm cluster, cluster mode's
workers): project modules edited since the worker loaded them are imported again, helpers first;
unchanged modules and mlflowdsl's own are left alone."""

from __future__ import annotations

import os
import sys

import pytest

from mlflowdsl.tasks import TaskContext
from mlflowdsl.tasks.custom import Custom


def _write(path, text):
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    stamp = max(before + 1_000_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(stamp, stamp))  # a new mtime even on a coarse clock


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("fresh_steps", "fresh_helpers"):
        sys.modules.pop(name, None)


def _run(project, uses="fresh_steps:value"):
    ctx = TaskContext(base_dir=str(project), extra={"uses": uses})
    return Custom().run_function(uses, {}, {}, ctx).outputs["output"]


def test_an_edited_function_runs_its_new_code(project):
    _write(project / "fresh_steps.py", "def value():\n    return 1\n")
    assert _run(project) == 1
    _write(project / "fresh_steps.py", "def value():\n    return 2\n")
    assert _run(project) == 2


def test_an_edited_helper_in_another_module_is_picked_up_by_its_importer(project):
    _write(project / "fresh_helpers.py", "def base():\n    return 10\n")
    _write(project / "fresh_steps.py", "from fresh_helpers import base\n\ndef value():\n    return base() + 1\n")
    assert _run(project) == 11
    _write(project / "fresh_helpers.py", "def base():\n    return 20\n")
    assert _run(project) == 21


def test_unchanged_modules_are_not_reloaded(project):
    _write(project / "fresh_steps.py", "import itertools\nCOUNT = itertools.count()\n\ndef value():\n    return next(COUNT)\n")
    assert [_run(project) for _ in range(3)] == [0, 1, 2]  # a reload would restart the counter


def test_a_new_signature_is_read_again(project):
    _write(project / "fresh_steps.py", "def value():\n    return 1\n")
    assert _run(project) == 1
    _write(project / "fresh_steps.py", "def value(k: int = 5):\n    return k\n")
    assert _run(project) == 5
