"""`mlw plan` is read-only: run from a directory without a home it creates no `.mlw/` there,
and says which home it read (the home is relative to the current directory)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mlflowdsl.cli import cli

WORKFLOW = 'workflow w {\n  task prep: data_preprocessing { source = "sklearn:wine" }\n}\n'


def test_plan_from_another_directory_creates_no_home_and_says_so(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "w.mlw").write_text(WORKFLOW)
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLW_HOME", raising=False)
    result = CliRunner().invoke(cli, ["plan", str(project / "w.mlw")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []  # no .mlw/ (nor anything else) written
    assert f"no runs recorded under {elsewhere / '.mlw'}" in result.output.replace("\n", " ")
    as_json = CliRunner().invoke(cli, ["plan", str(project / "w.mlw"), "--format", "json"], catch_exceptions=False)
    assert json.loads(as_json.output)["home"] == str(elsewhere / ".mlw")
    assert list(elsewhere.iterdir()) == []
