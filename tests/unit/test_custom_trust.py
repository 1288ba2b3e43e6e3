"""The trust model of custom tasks (docs/operations.md "Security"): ``mlw lint``/``compile``
read a custom function's signature from its source and never import or run the user's module;
``uses`` may name only project modules (or packages in ``trusted_modules``), never the
standard library (issue 14, point 5)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mlflowdsl.compiler.api import compile_file
from mlflowdsl.errors import MlwError
from mlflowdsl.tasks.custom import Custom, schema_for, static_schema
from mlflowdsl.tasks.source import UsesRefused

MAIN = "import sys; from mlflowdsl.cli import main; main(sys.argv[1:])"
STEP = '''
import pathlib
pathlib.Path({marker!r}).write_text("top-level code ran")

from mlflowdsl.tasks.values import Dataset

def balance(data: Dataset, ratio: float = 0.5, seed: int = 3) -> Dataset:
    return data
'''


def _workflow(tmp_path, uses: str, attrs: str = "ratio = 0.25", data: str = "data = prep.output") -> str:
    path = tmp_path / "w.mlw"
    path.write_text('workflow w {\n  task prep: data_preprocessing { source = "sklearn:iris" }\n'
                    f'  task b: custom after prep {{\n    uses = "{uses}"\n    {data}\n    {attrs}\n  }}\n'
                    '  task t: model_training { data = b.output  algorithm = "logistic_regression" }\n}\n')
    return str(path)


def _diagnostics(path):
    return [(d.code, d.span.line, d.span.column, d.message, d.hint) for d in compile_file(path).diagnostics
            if d.severity == "error"]


def test_lint_and_compile_read_the_signature_without_running_the_module(tmp_path):
    marker = tmp_path / "ran.txt"
    (tmp_path / "steps.py").write_text(STEP.format(marker=str(marker)))
    wf = _workflow(tmp_path, "steps:balance")
    for command in ("lint", "compile"):
        out = subprocess.run([sys.executable, "-c", MAIN, command, wf], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert not marker.exists(), f"mlw {command} ran the module's top-level code"
    result = compile_file(wf)
    assert result.ok and result.plan.task("b").params == {"ratio": 0.25, "data": {"$ref": "prep.output"}}
    assert not marker.exists()
    # the checks still come from the hints: a string where a float goes, an unknown attribute
    bad = _workflow(tmp_path, "steps:balance", 'ratio = "half"\n    sed = 1')
    codes = [d[0] for d in _diagnostics(bad)]
    assert len(codes) == 2 and not marker.exists(), codes


def test_a_parent_package_is_not_imported_either(tmp_path):
    marker = tmp_path / "ran.txt"
    pkg = tmp_path / "pkg" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('parent ran')\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "steps.py").write_text(STEP.format(marker=str(marker)))
    assert compile_file(_workflow(tmp_path, "pkg.sub.steps:balance")).ok
    assert not marker.exists()


def test_a_re_exported_function_is_followed_to_its_definition(tmp_path):
    (tmp_path / "impl.py").write_text(STEP.format(marker=str(tmp_path / "ran.txt")))
    (tmp_path / "steps.py").write_text("from impl import balance as balance\n")
    assert compile_file(_workflow(tmp_path, "steps:balance")).ok
    assert not (tmp_path / "ran.txt").exists()


@pytest.mark.parametrize("uses", ["os:system", "subprocess:run", "builtins:eval", "shutil:rmtree",
                                  "mlflowdsl.tasks.custom:to_outputs"])
def test_stdlib_and_mlflowdsl_functions_are_refused_at_lint(tmp_path, uses):
    [(code, line, column, message, hint)] = _diagnostics(_workflow(tmp_path, uses, "command = 1"))
    assert (code, line, column) == ("MLW218", 4, 12)
    assert "standard-library" in message or "cannot be named" in message
    assert hint


def test_an_installed_package_needs_the_trusted_modules_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLW_TRUSTED_MODULES", raising=False)
    wf = _workflow(tmp_path, "yaml:safe_load", 'stream = "a: 1"', data="")
    [(code, _, _, message, hint)] = _diagnostics(wf)
    assert code == "MLW218" and "outside the project" in message and "MLW_TRUSTED_MODULES=yaml" in hint
    monkeypatch.setenv("MLW_TRUSTED_MODULES", "numpy, yaml")
    assert _diagnostics(wf) == []


def test_the_worker_refuses_the_standard_library_too():
    with pytest.raises(UsesRefused, match="standard-library"):
        schema_for("os:system")
    with pytest.raises(MlwError, match="standard-library"):
        Custom().run_function("subprocess:run", {"args": ["true"]}, {}, None)


def test_static_and_imported_schemas_agree(tmp_path, monkeypatch):
    (tmp_path / "sig_steps.py").write_text(textwrap.dedent('''
        from __future__ import annotations
        import typing
        from typing import Literal, Optional
        from mlflowdsl.tasks import TaskContext
        from mlflowdsl.tasks.values import Dataset, TrainedModel

        LIMIT = 10

        def f(data: Dataset, models: list[TrainedModel], extra: Optional[Dataset] = None, ctx: TaskContext = None,
              *, mode: Literal["fast", "slow"] = "fast", n: int = LIMIT, names: list[str] = [], w: "float" = 1.0,
              anything=3, maybe: typing.Union[int, None] = None) -> TrainedModel:
            return models[0]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    static = static_schema("sig_steps:f", str(tmp_path))
    imported = schema_for("sig_steps:f")
    assert static.inputs == imported.inputs and static.outputs == imported.outputs
    assert static.context_parameter == imported.context_parameter == "ctx"
    assert set(static.params_model.model_fields) == set(imported.params_model.model_fields)
    for name, field in imported.params_model.model_fields.items():
        assert static.params_model.model_fields[name].annotation == field.annotation, name
        assert static.params_model.model_fields[name].is_required() == field.is_required(), name
    schema_for.cache_clear()


def test_a_module_on_pythonpath_is_the_users_choice(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "team_steps.py").write_text(STEP.format(marker=str(tmp_path / "ran.txt")))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(lib))
    wf = _workflow(project, "team_steps:balance")
    monkeypatch.setenv("PYTHONPATH", "")
    [(code, _, _, message, _)] = _diagnostics(wf)
    assert code == "MLW218" and "outside the project" in message
    monkeypatch.setenv("PYTHONPATH", str(lib))
    assert _diagnostics(wf) == [] and not (tmp_path / "ran.txt").exists()


def test_the_worker_refuses_installed_code_outside_the_trusted_list(monkeypatch, tmp_path):
    # e.g. a plan edited in a shared Redis naming a function that unpickles a file
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLW_TRUSTED_MODULES", raising=False)
    schema_for.cache_clear()
    with pytest.raises(UsesRefused, match="installed package"):
        Custom().run_function("pandas:read_pickle", {"filepath_or_buffer": str(tmp_path / "x.pkl")}, {}, None)
    schema_for.cache_clear()
