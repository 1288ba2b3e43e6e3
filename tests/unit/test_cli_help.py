"""Every `mlw` command has help text and a section in docs/cli.md (as sqlite-utils checks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlflowdsl.cli import COMMANDS, cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_and_is_documented(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    command = cli.get_command(None, name)
    assert (command.help or "").strip(), f"`mlw {name}` has no help text"
    assert f"`mlw {name}" in DOC, f"docs/cli.md has no section for `mlw {name}`"


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
