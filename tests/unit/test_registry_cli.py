"""``mlw models ...`` and ``mlw deployments`` (records only) through the real click commands."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.settings import Settings
from test_registry_core import fitted


@pytest.fixture()
def home(tmp_path):
    home = str(tmp_path / "home")
    registry = open_registry(Settings(home=home))
    registry.register("fraud", fitted(0.90), lineage={"execution_id": "exec123456789", "task_id": "deploy"})
    registry.register("fraud", fitted(0.85), label="v2")
    registry.register("fraud", fitted(0.95))
    return home


def mlw(*args):
    return CliRunner().invoke(cli, [*args], catch_exceptions=False)


def test_ls_shows_versions_aliases_and_lineage(home):
    assert mlw("models", "promote", "fraud", "1", "--alias", "champion", "--home", home).exit_code == 0
    result = mlw("models", "ls", "--home", home)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "LABEL", "ALIASES", "TYPE", "METRICS", "EXECUTION", "TASK",
                                "REGISTERED"]
    assert lines[1].split()[:5] == ["fraud", "1", "-", "champion", "classification"]
    assert "exec12345678" in lines[1] and "deploy" in lines[1]
    assert lines[2].split()[:3] == ["fraud", "2", "v2"]
    listed = json.loads(mlw("models", "ls", "fraud", "--json", "--home", home).output)
    assert [(m["id"], m["aliases"]) for m in listed] == [("fraud/1", ["champion"]), ("fraud/2", []), ("fraud/3", [])]


def test_promote_is_gated_by_default(home):
    mlw("models", "promote", "fraud", "1", "--alias", "champion", "--home", home)
    refused = mlw("models", "promote", "fraud", "2", "--alias", "champion", "--home", home)
    assert refused.exit_code == 1
    assert "promotion of fraud/2 to @champion refused: accuracy = 0.8500 vs champion (fraud/1) 0.9000" in refused.output
    assert "below min_delta 0 by 0.0500" in refused.output
    short = mlw("models", "promote", "fraud", "3", "--alias", "champion", "--min-delta", "0.1", "--home", home)
    assert short.exit_code == 1 and "below min_delta 0.1 by 0.0500" in short.output
    ok = mlw("models", "promote", "fraud", "3", "--alias", "champion", "--min-delta", "0.01", "--home", home)
    assert ok.exit_code == 0 and "fraud@champion -> fraud/3 (was fraud/1)" in ok.output
    forced = mlw("models", "promote", "fraud", "2", "--alias", "champion", "--no-gate", "--home", home)
    assert forced.exit_code == 0
    shown = json.loads(mlw("models", "show", "fraud@champion", "--home", home).output)
    assert shown["id"] == "fraud/2" and shown["label"] == "v2"
    assert [(h["previous"], h["version"]) for h in shown["alias_history"]] == [(3, 2)]


def test_alias_set_show_delete_and_delete_version(home):
    assert mlw("models", "alias", "fraud", "staging", "2", "--home", home).output.strip() == "fraud@staging -> fraud/2"
    assert mlw("models", "alias", "fraud", "staging", "--home", home).output.strip() == "fraud/2"
    refused = mlw("models", "delete", "fraud", "2", "--home", home)
    assert refused.exit_code == 1 and "holds the alias(es) staging" in refused.output
    assert "removed (was fraud/2)" in mlw("models", "alias", "fraud", "staging", "--delete", "--home", home).output
    assert mlw("models", "delete", "fraud", "2", "--home", home).output.strip() == "deleted fraud/2"
    missing = mlw("models", "show", "fraud/2", "--home", home)
    assert missing.exit_code == 1 and "no registered model fraud/2 (versions of fraud: 1, 3)" in missing.output


def test_bad_input_is_a_clean_error(home):
    for args, message in [
        (("models", "show", "../x"), "not a safe name"),
        (("models", "show", "nope@champion"), "has no alias"),
        (("deployments", "status", "nope"), "no deployment 'nope'"),
        (("deployments", "rollback", "nope"), "no deployment 'nope'"),
    ]:
        result = mlw(*args, "--home", home)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert mlw("deployments", "ls", "--home", home).output.strip() == "no deployments"
