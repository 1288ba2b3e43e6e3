"""Custom tasks: the schema comes from the function's type hints."""

from __future__ import annotations

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.tasks.values import Dataset

HEAD = 'workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n'


def example(data: Dataset, factor: float = 2.0, label="x") -> dict:
    """The custom step the tests below compile: ``data`` is an input, ``factor`` and ``label`` params."""
    return {"rows": data.n_train * factor, "label": label}


def test_custom_task_params_inputs_and_outputs_come_from_the_function():
    r = compile_text(HEAD + '  task c: custom after prep { uses = "test_compiler_custom:example"  factor = 3 }\n'
                     '  task e: model_evaluation { data = c.output  model = "models:/m/1" }\n}\n', "c.mlw")
    assert r.ok, r.diagnostics
    t = r.plan.task("c")
    assert (t.type, t.uses) == ("custom", "test_compiler_custom:example")
    assert t.params == {"factor": 3.0, "data": {"$ref": "prep.output"}}  # data filled from `after`
    assert t.outputs == ["output", "metrics"]
    # an output of unknown kind (no precise return type) is accepted by any input
    assert r.plan.task("e").params["data"] == {"$ref": "c.output"}


def test_custom_task_attributes_are_checked():
    r = compile_text(HEAD + '  task c: custom { uses = "test_compiler_custom:example"  data = prep.output  factr = 3 }\n}\n',
                     "c.mlw")
    assert [(d.code, d.span.line, d.hint) for d in r.diagnostics] == [("MLW203", 3, "did you mean `factor`?")]


def test_custom_task_without_uses():
    r = compile_text(HEAD + "  task c: custom { factor = 3 }\n}\n", "c.mlw")
    assert [(d.code, d.span.line) for d in r.diagnostics] == [("MLW205", 3)]
