"""`mlw new`: every template renders, compiles and lints clean with --strict; names are checked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.compiler.api import compile_file, lint_file
from mlflowdsl.templates import TEMPLATES, TemplateError, render_project


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_each_template_compiles_and_lints_clean_with_strict(template, tmp_path):
    done = CliRunner().invoke(cli, ["new", "my-project", "--template", template, "--dir", str(tmp_path / "p")])
    assert done.exit_code == 0, done.output
    main, params = tmp_path / "p" / "my_project.mlw", tmp_path / "p" / "params.yaml"
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"my_project.mlw", "params.yaml", "README.md"}
    lint = lint_file(str(main), params_file=str(params), strict=True)
    assert lint.ok and not lint.diagnostics, [d.message for d in lint.diagnostics]
    plan = compile_file(str(main), params_file=str(params), strict=True).raise_for_errors()
    assert plan.workflow.id == "my_project" and len(plan.tasks) >= 3
    assert f"--template {template}" in (tmp_path / "p" / "README.md").read_text()
    assert "mlw run my_project.mlw --params-file params.yaml" in main.read_text()


def test_user_values_cannot_break_the_workflow_or_reach_python():
    with pytest.raises(TemplateError, match="not a project name"):
        render_project('x" } task evil: custom { uses = "os:system', "classification")
    with pytest.raises(TemplateError, match="not a project name"):
        render_project("{{ ''.__class__ }}", "classification")
    files = render_project("Churn_2", "regression")
    assert 'name    = "Churn 2"' in files["churn_2.mlw"]


def test_unknown_template_and_a_non_empty_directory_are_clear_errors(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    done = CliRunner().invoke(cli, ["new", "p", "--dir", str(tmp_path / "p")])
    assert done.exit_code == 1 and "is not empty" in done.output and "--force" in done.output
    assert (tmp_path / "p" / "keep.txt").read_text() == "mine"
    with pytest.raises(TemplateError, match="unknown template"):
        render_project("p", "nope")


def test_doctests():
    import doctest

    import mlflowdsl.templates as templates

    result = doctest.testmod(templates)
    assert result.attempted > 0 and result.failed == 0
