"""docs/models.md: its workflow compiles, and the commands and options it names exist."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.compiler.api import compile_text

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "docs" / "models.md").read_text(encoding="utf-8")


def test_the_workflow_shown_compiles_clean():
    [block] = re.findall(r"```mlw\n(.*?)```", TEXT, re.DOTALL)
    result = compile_text(block, file=str(REPO / "docs" / "models_block.mlw"))
    assert result.diagnostics == [] and result.plan is not None
    deploy = next(t for t in result.plan.tasks if t.id == "deploy")
    assert deploy.params["serve"] is True and deploy.params["alias"] == "champion"


def test_the_commands_named_exist():
    runner = CliRunner()
    for args in (["models", "promote", "--help"], ["models", "alias", "--help"], ["serve", "--help"],
                 ["deployments", "rollback", "--help"], ["deployments", "start", "--help"]):
        assert runner.invoke(cli, args).exit_code == 0, args
    promote = runner.invoke(cli, ["models", "promote", "--help"]).output
    for option in ("--better-than", "--metric", "--min-delta", "--min-relative", "--no-gate"):
        assert option in TEXT and option in promote
