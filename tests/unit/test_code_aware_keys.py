"""A custom task's cache key follows its code (issue 13, point 2): the function, the
module-level names it uses and the project modules it imports, compared as normalized syntax
trees; ``mlw plan`` names the file that changed."""

from __future__ import annotations

import itertools
import os
import textwrap

import pytest

from mlflowdsl.compiler.api import compile_file
from mlflowdsl.runtime.keyparts import compare, plan_components, reasons
from mlflowdsl.runtime.plan_status import History, Previous, plan_status
from mlflowdsl.runtime.records import TaskResult

STEPS = textwrap.dedent('''
    """Feature steps."""
    import numpy as np

    from helpers import clip
    from mlflowdsl.tasks.values import Dataset

    THRESHOLD = 3


    def unrelated():
        return 1


    def add_log(data: Dataset, column: str = "x", offset: float = 1.0) -> Dataset:
        """Add a log column."""
        tmp = np.log1p(clip(offset, THRESHOLD))  # the transform
        unused = 0
        return data if tmp else data
''')
HELPERS = textwrap.dedent('''
    def clip(value, limit):
        # keep values small
        return min(value, limit)
''')
WORKFLOW = ('workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n'
            '  task fe: custom { uses = "fe_steps:add_log"  data = prep.output }\n'
            '  task train: model_training { data = fe.output  algorithm = "logistic_regression" }\n}\n')

# (edit, file, old text, new text, rerun?)
EDITS = [
    ("body", "fe_steps.py", "np.log1p(", "np.sqrt(", True),
    ("helper in another local module", "helpers.py", "min(value, limit)", "max(value, limit)", True),
    ("default argument", "fe_steps.py", "offset: float = 1.0", "offset: float = 2.0", True),
    ("module constant the function uses", "fe_steps.py", "THRESHOLD = 3", "THRESHOLD = 4", True),
    ("annotation", "fe_steps.py", "column: str", "column: int", True),
    ("a new helper in an imported module", "helpers.py", "def clip", "def other():\n    return 2\n\n\ndef clip", True),
    ("comment", "fe_steps.py", "# the transform", "# log of the clipped offset", False),
    ("comment in the helper module", "helpers.py", "# keep values small", "# bounded", False),
    ("docstring", "fe_steps.py", '"""Add a log column."""', '"""Add log(1 + x) as a new column."""', False),
    ("module docstring", "fe_steps.py", '"""Feature steps."""', '"""Steps that add features."""', False),
    ("formatting", "fe_steps.py", "tmp = np.log1p(clip(offset, THRESHOLD))",
     "tmp = np.log1p(\n        clip(offset,\n             THRESHOLD)\n    )", False),
    ("rename of an unused local", "fe_steps.py", "unused = 0", "spare = 0", False),
    ("consistent rename of a used local", "fe_steps.py", "tmp = np.log1p(clip(offset, THRESHOLD))  # the transform\n"
     "    unused = 0\n    return data if tmp else data", "value = np.log1p(clip(offset, THRESHOLD))  # the transform\n"
     "    unused = 0\n    return data if value else data", False),
    ("another function of the module", "fe_steps.py", "return 1", "return 2", False),
    ("an import the function does not use", "fe_steps.py", "import numpy as np", "import numpy as np\nimport json", False),
]
_mtime = itertools.count(1_700_000_000_000_000_000, 1_000_000_000)


def _write(path, text):
    path.write_text(text)
    ns = next(_mtime)  # each save a later mtime, as an editor's saves are
    os.utime(path, ns=(ns, ns))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "fe_steps.py", STEPS)
    _write(tmp_path / "helpers.py", HELPERS)
    (tmp_path / "w.mlw").write_text(WORKFLOW)
    return tmp_path


def _components(project):
    plan = compile_file(str(project / "w.mlw")).raise_for_errors()
    return plan, plan_components(plan, str(project))[1]


@pytest.mark.parametrize("edit, file, old, new, rerun", EDITS, ids=[e[0] for e in EDITS])
def test_an_edit_reruns_the_task_exactly_when_its_code_changes(project, edit, file, old, new, rerun):
    _, before = _components(project)
    assert set(before["fe"]["code"]) == {"fe_steps.py", "helpers.py"}
    assert before["fe"]["packages"]["numpy"].startswith("numpy ")
    text = (project / file).read_text()
    assert old in text
    _write(project / file, text.replace(old, new))
    _, after = _components(project)
    changed = after["fe"]["key"] != before["fe"]["key"]
    assert changed == rerun, (edit, reasons(compare(before["fe"], after["fe"])))
    assert (after["train"]["key"] != before["train"]["key"]) == rerun  # dependents follow
    assert after["prep"]["key"] == before["prep"]["key"]
    if rerun and edit != "annotation":
        assert reasons(compare(before["fe"], after["fe"])) == [f"code changed ({file})"]


def test_mlw_plan_names_the_changed_file(project):
    _, before = _components(project)
    history = History({tid: Previous("e1", TaskResult(task_id=tid, status="succeeded", ended=1000.0,
                                                      key_components=c, cache_key=c["key"]))
                       for tid, c in before.items()})
    _write(project / "fe_steps.py", STEPS.replace("np.log1p(", "np.sqrt("))
    plan, _ = _components(project)
    stored = {c["key"] for c in before.values()}
    rows = {r.task_id: (r.status, r.reasons) for r in plan_status(plan, base_dir=str(project),
                                                                  contains=lambda s, k: k in stored,
                                                                  history=history, now=2000.0)}
    assert rows["fe"] == ("will run", ("code changed (fe_steps.py)",))
    assert rows["train"] == ("will run", ("input changed upstream (fe)",))
    assert rows["prep"][0] == "cached"


def test_reading_the_code_runs_none_of_it(project):
    _write(project / "helpers.py", HELPERS + f"\nopen({str(project / 'ran.txt')!r}, 'w').write('ran')\n")
    _components(project)
    assert not (project / "ran.txt").exists()


def test_a_task_whose_module_cannot_be_found_keeps_a_plain_key():
    from mlflowdsl.ir import Task, key_part
    from mlflowdsl.runtime.keyparts import task_components

    t = Task(id="a", type="custom", uses="no_such_module_anywhere:f", params={},
             key_part=key_part("custom", "1", "no_such_module_anywhere:f", {}, ""))
    comp = plan_components(_single(t), ".")[1]["a"]
    assert "code" not in comp and comp == task_components(t, {}, [])


def _single(task):
    from mlflowdsl.ir import Plan, Workflow

    return Plan(workflow=Workflow(id="w"), tasks=[task])
