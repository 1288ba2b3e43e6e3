"""`mlw diff`: the semantic diff of the fixture pair in tests/fixtures/diff (snapshot reviewed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from mlflowdsl.cli import cli
from mlflowdsl.compiler.api import compile_file
from mlflowdsl.compiler.diff import diff_plans

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "diff"


def _mlw(*args: str):
    cwd = os.getcwd()
    os.chdir(FIXTURES)  # relative names in the output keep the snapshot machine-independent
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(cwd)


def test_text_diff_matches_snapshot(snapshot):
    done = _mlw("diff", "old.mlw", "new.mlw")
    assert done.exit_code == 0, done.output
    assert done.output == snapshot


def test_json_diff_matches_snapshot(snapshot):
    done = _mlw("diff", "old.mlw", "new.mlw", "--format", "json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == snapshot


def test_what_reruns_is_the_key_changes_and_their_dependents():
    old = compile_file(str(FIXTURES / "old.mlw")).raise_for_errors()
    new = compile_file(str(FIXTURES / "new.mlw")).raise_for_errors()
    d = diff_plans(old, new)
    assert d.added == ("knn",) and d.removed == ("old_report",)
    by_id = {c.task_id: c for c in d.changed}
    # a retry change is shown but does not enter the cache key: baseline stays cached
    assert not by_id["baseline"].changes_key and "baseline" not in d.invalidated
    assert by_id["train"].changes_key and [f.field for f in by_id["train"].fields] == [
        "params.hyperparameters.n_estimators"]
    assert set(d.invalidated) == {"train", "knn", "evaluate"}
    assert "prepare" not in d.invalidated


def test_a_file_diffed_with_itself_has_no_difference():
    done = _mlw("diff", "old.mlw", "old.mlw")
    assert done.exit_code == 0 and done.output == "no semantic difference between old.mlw and old.mlw\n"


def test_a_broken_file_is_reported_with_its_location(tmp_path):
    bad = tmp_path / "bad.mlw"
    bad.write_text("mlw 1\nworkflow w {\n  task a: nope { }\n}\n")
    done = CliRunner().invoke(cli, ["diff", str(FIXTURES / "old.mlw"), str(bad)])
    assert done.exit_code == 1
    assert f"{bad}:3:" in done.output and "Traceback" not in done.output


def test_doctests():
    import doctest

    import mlflowdsl.compiler.diff as diff

    result = doctest.testmod(diff)
    assert result.attempted > 0 and result.failed == 0
