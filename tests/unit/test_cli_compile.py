"""`mlw lint`, `mlw compile`, `mlw fmt`, `mlw schema` through click's CliRunner: exit codes
and output."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from mlflowdsl.cli import cli

GOOD = textwrap.dedent("""
    workflow w {
      params { seed: int = 1 }
      task prep: data_preprocessing { source = "sklearn:iris"  seed = params.seed }
      task train: model_training { data = prep.output  algorithm = "knn" }
      task ev: model_evaluation { data = prep.output  model = train.model }
    }
""").lstrip()

WARN = GOOD.replace("params { seed: int = 1 }", "params { seed: int = 1  extra: int = 2 }")

BAD = textwrap.dedent("""
    workflow w {
      task prep: data_preprocessing { source = "sklearn:iris" }
      task train: model_training after prep {
        n_estimator = 200
      }
    }
""").lstrip()


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def files(tmp_path):
    out = {}
    for name, text in (("good.mlw", GOOD), ("warn.mlw", WARN), ("bad.mlw", BAD)):
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    return out


def test_lint_clean_file(runner, files):
    r = runner.invoke(cli, ["lint", files["good.mlw"]])
    assert r.exit_code == 0
    assert r.stderr == f"{files['good.mlw']}: no problems found\n"


def test_lint_error_prints_code_location_caret_and_hint(runner, files):
    r = runner.invoke(cli, ["lint", files["bad.mlw"]])
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "error[MLW203]: unknown attribute `n_estimator` for task type model_training"
    assert lines[1] == f"  --> {files['bad.mlw']}:4:5"
    assert lines[3] == "4 |     n_estimator = 200"
    assert lines[4].startswith("  |     ^^^^^^^^^^^")
    assert lines[-1] == f"{files['bad.mlw']}: 1 error"


def test_lint_json_format(runner, files):
    r = runner.invoke(cli, ["lint", files["bad.mlw"], "--format", "json"])
    assert r.exit_code == 1
    (d,) = json.loads(r.stdout)
    assert {k: d[k] for k in ("code", "severity", "file", "line", "column", "end_line", "end_column")} == {
        "code": "MLW203", "severity": "error", "file": files["bad.mlw"], "line": 4, "column": 5,
        "end_line": 4, "end_column": 16}
    assert set(d) == {"code", "severity", "message", "file", "line", "column", "end_line", "end_column", "hint"}


def test_lint_warning_exits_0_but_strict_exits_1(runner, files):
    r = runner.invoke(cli, ["lint", files["warn.mlw"]])
    assert r.exit_code == 0 and r.stderr.startswith("warning[MLW401]: parameter `extra` is never used")
    r = runner.invoke(cli, ["lint", files["warn.mlw"], "--strict"])
    assert r.exit_code == 1 and r.stderr.startswith("error[MLW401]")


def test_lint_syntax_error_is_exit_1_with_mlw101(runner, tmp_path):
    f = tmp_path / "s.mlw"
    f.write_text("workflow w {\n  task a data_preprocessing { }\n}\n")
    r = runner.invoke(cli, ["lint", str(f), "--format", "json"])
    assert r.exit_code == 1
    assert [(d["code"], d["line"], d["column"]) for d in json.loads(r.stdout)] == [("MLW101", 2, 10)]


def test_compile_prints_canonical_json(runner, files):
    r = runner.invoke(cli, ["compile", files["good.mlw"]])
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)
    assert [t["id"] for t in plan["tasks"]] == ["prep", "train", "ev"]
    assert plan["ir_version"] == "1" and len(plan["fingerprint"]) == 64
    assert r.stdout == json.dumps(plan, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_compile_params_and_output_file(runner, files, tmp_path):
    out = tmp_path / "out" / "plan.json"
    r = runner.invoke(cli, ["compile", files["good.mlw"], "-p", "seed=5", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert json.loads(out.read_text())["workflow"]["params"] == {"seed": 5}
    pf = tmp_path / "p.json"
    pf.write_text('{"seed": 9}')
    r = runner.invoke(cli, ["compile", files["good.mlw"], "--params-file", str(pf)])
    assert json.loads(r.stdout)["workflow"]["params"] == {"seed": 9}


def test_compile_bad_override_is_exit_1_naming_the_flag(runner, files):
    r = runner.invoke(cli, ["compile", files["good.mlw"], "-p", "seed=abc"])
    assert r.exit_code == 1
    assert r.stderr.splitlines()[:2] == ["error[MLW212]: parameter `seed`: expected an integer, got 'abc'",
                                        "  --> -p seed"]
    assert r.stdout == ""


@pytest.mark.parametrize("args", [["-p", "seed"], ["--format", "yaml"], []])
def test_usage_errors_exit_2(runner, files, args):
    r = runner.invoke(cli, ["compile", *([files["good.mlw"]] if args else []), *args])
    assert r.exit_code == 2


def test_compile_dot_and_mermaid(runner, files):
    r = runner.invoke(cli, ["compile", files["good.mlw"], "--format", "dot"])
    assert r.exit_code == 0
    assert r.stdout.startswith('digraph "w" {') and '"prep" -> "ev";' in r.stdout
    r = runner.invoke(cli, ["compile", files["good.mlw"], "--format", "mermaid"])
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == "flowchart LR" and "t0 --> t1" in r.stdout


def test_compile_errors_exit_1_and_write_nothing(runner, files, tmp_path):
    out = tmp_path / "plan.json"
    r = runner.invoke(cli, ["compile", files["bad.mlw"], "-o", str(out)])
    assert r.exit_code == 1 and not out.exists()
    assert r.stderr.splitlines()[-1] == f"{files['bad.mlw']}: 1 error; no plan written"


def test_missing_file_is_mlw105(runner, tmp_path):
    r = runner.invoke(cli, ["compile", str(tmp_path / "nope.mlw")])
    assert r.exit_code == 1 and r.stderr.startswith("error[MLW105]")


def test_seed_json_is_accepted(runner, tmp_path):
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"workflow_id": "w", "tasks": [
        {"task_id": "p", "task_type": "data_preprocessing", "parameters": {"dataset_path": "x.csv"}},
        {"task_id": "t", "task_type": "model_training", "dependencies": ["p"], "parameters": {"algorithm": "knn"}},
        {"task_id": "e", "task_type": "model_evaluation", "dependencies": ["p", "t"]}]}))
    r = runner.invoke(cli, ["compile", str(f)])
    assert r.exit_code == 0, r.stderr
    # inputs left out are filled from the only dependency with a fitting output
    assert json.loads(r.stdout)["tasks"][2]["params"] == {"data": {"$ref": "p.output"}, "model": {"$ref": "t.model"}}
    assert runner.invoke(cli, ["lint", str(f)]).exit_code == 0


def test_fmt_check_write_and_print(runner, tmp_path):
    from mlflowdsl.compiler.fmt import format_text

    messy = 'workflow w {\n      task prep:   data_preprocessing {source="x.csv"}\n}\n'
    f = tmp_path / "m.mlw"
    f.write_text(messy)
    canonical = format_text(messy, str(f))
    assert canonical != messy
    r = runner.invoke(cli, ["fmt", str(f)])
    assert r.exit_code == 0 and r.stdout == canonical
    r = runner.invoke(cli, ["fmt", str(f), "--check"])
    assert r.exit_code == 1 and "would reformat" in r.stderr
    r = runner.invoke(cli, ["fmt", str(f), "--write"])
    assert r.exit_code == 0 and f.read_text() == canonical
    assert runner.invoke(cli, ["fmt", str(f), "--check"]).exit_code == 0
    assert runner.invoke(cli, ["fmt", str(f), "--check", "--write"]).exit_code == 2


def test_fmt_prints_a_seed_document_as_mlw_with_the_same_plan(runner, tmp_path):
    from mlflowdsl.compiler.api import compile_file

    doc = {"workflow_id": "w", "global_parameters": {"seed": 3}, "tasks": [
        {"task_id": "p", "task_type": "data_preprocessing",
         "parameters": {"dataset_path": "x.csv", "seed": {"$ref": "params.seed"}},
         "resources": {"memory": "4GiB"}, "cache": "memory", "retry": {"max_attempts": 2}},
        {"task_id": "t", "task_type": "model_training", "dependencies": ["p"], "parameters": {"algorithm": "knn"}},
        {"task_id": "e", "task_type": "model_evaluation", "dependencies": ["p", "t"]}]}
    f = tmp_path / "w.json"
    f.write_text(json.dumps(doc))
    r = runner.invoke(cli, ["fmt", str(f)])
    assert r.exit_code == 0, r.stderr
    assert "memory = 4GiB" in r.stdout and "cache { strategy = memory }" in r.stdout
    mlw = tmp_path / "w.mlw"
    mlw.write_text(r.stdout)
    assert compile_file(mlw).plan.fingerprint == compile_file(f).plan.fingerprint
    assert runner.invoke(cli, ["fmt", str(f), "--check"]).exit_code == 2


def test_fmt_syntax_error_exit_1(runner, tmp_path):
    f = tmp_path / "s.mlw"
    f.write_text("workflow w {\n")
    r = runner.invoke(cli, ["fmt", str(f)])
    assert r.exit_code == 1 and r.stderr.startswith("error[MLW101]")


def test_schema_is_the_plan_json_schema(runner):
    r = runner.invoke(cli, ["schema"])
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "Plan"
    assert {"ir_version", "workflow", "tasks", "tunings", "fingerprint"} <= set(schema["properties"])


@pytest.mark.parametrize("command", ["lint", "compile", "fmt", "schema"])
def test_every_command_has_help(runner, command):
    r = runner.invoke(cli, [command, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.stdout and len(r.stdout.splitlines()) > 3
