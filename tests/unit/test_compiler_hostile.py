"""Hostile or absurd inputs end in coded diagnostics with a place, never a traceback (issue 14,
points 6 and 10): numbers that do not fit, quantities that overflow their unit, NUL bytes and
lone surrogates, names with a trailing newline, imports of files that are not `.mlw`."""

from __future__ import annotations

import json

import pytest

from mlflowdsl.compiler.api import compile_file, compile_spec, compile_text

PREP = 'task prep: data_preprocessing { source = "sklearn:iris" }'


def mlw(train_body: str = "", extra: str = "") -> str:
    return (f"{extra}workflow w {{\n  {PREP}\n"
            f"  task train: model_training after prep {{ algorithm = \"gradient_boosting\" {train_body} }}\n}}\n")


def found(result) -> list[tuple]:
    return [(d.code, d.span.line, d.span.column) if d.span else (d.code, d.subject) for d in result.diagnostics
            if d.severity == "error"]


TRAIN_COL = len('  task train: model_training after prep { algorithm = "gradient_boosting" ') + 1


@pytest.mark.parametrize("body, code, offset", [
    ("seed = " + "9" * 4400, "MLW108", len("seed = ")),          # int() of 4,300+ digits raised ValueError
    ("seed = 9223372036854775808", "MLW108", len("seed = ")),    # beyond 64 bits
    ("seed = -" + "9" * 30, "MLW108", len("seed = ")),
    ("hyperparameters = { learning_rate = 1e400 }", "MLW108", len("hyperparameters = { learning_rate = ")),
    ("timeout = 1e308d", "MLW206", len("timeout = ")),          # inf seconds: the plan's JSON refused it
    ("resources { memory = 1e309GiB }", "MLW108", len("resources { memory = ")),  # float('inf') -> int
    ("resources { memory = 1e300GiB }", "MLW206", len("resources { memory = ")),  # finite, > 2**63 bytes
])
def test_numbers_that_do_not_fit_are_diagnostics_at_the_literal(body, code, offset):
    assert found(compile_text(mlw(body), "t.mlw")) == [(code, 3, TRAIN_COL + offset)]


def test_a_search_space_bound_of_1e400_is_a_diagnostic():
    text = mlw(extra="") .replace("}\n}\n", "}\n  tune train { search { learning_rate = float(0.01, 1e400) }"
                                  "  objective = maximize(cv_accuracy)  trials = 2 }\n}\n")
    assert [c for c, *_ in found(compile_text(text, "t.mlw"))] == ["MLW108"]


def test_a_64_bit_integer_still_compiles():
    assert compile_text(mlw("seed = 9223372036854775807"), "t.mlw").ok


def test_nul_byte_in_an_import_path_is_mlw105_at_the_import(tmp_path):
    main = tmp_path / "main.mlw"
    main.write_text(mlw(extra='import "lib\\u0000x.mlw"\n'))
    r = compile_file(main)
    assert found(r) == [("MLW105", 1, 8)]
    assert "NUL" in r.diagnostics[0].message


def test_nul_byte_in_the_main_path_is_mlw105():
    r = compile_file("a\x00b.mlw")
    assert [d.code for d in r.diagnostics] == ["MLW105"]


def _spec(task_id="a", **extra) -> dict:
    task = {"task_id": task_id, "task_type": "data_preprocessing", "parameters": {"source": "sklearn:iris"}, **extra}
    return {"workflow_id": "w", "tasks": [task]}


def test_lone_surrogate_in_a_json_task_id_is_mlw106_at_its_key():
    text = '{"workflow_id": "w",\n "tasks": [{"task_id": "a\\ud800", "task_type": "data_preprocessing"}]}'
    assert found(compile_text(text, "w.json")) == [("MLW106", 2, 13)]


def test_lone_surrogate_in_a_spec_dict_is_mlw106():
    assert [d.code for d in compile_spec(_spec(parameters={"source": "x\udc00.csv"})).diagnostics] == ["MLW106"]


@pytest.mark.parametrize("value", ["1e400", "-1e400", "NaN", "Infinity", "9" * 30])
def test_numbers_a_plan_cannot_hold_in_json_are_mlw108(value):
    text = ('{"workflow_id": "w", "tasks": [{"task_id": "a", "task_type": "data_preprocessing",\n'
            f' "timeout": {value}, "parameters": {{"source": "sklearn:iris"}}}}]}}')
    assert found(compile_text(text, "w.json")) == [("MLW108", 2, 2)]


@pytest.mark.parametrize("task_id", ["a\n", "a b", "9a", "a;b", "train[x]"])
def test_json_task_ids_must_be_names(task_id):
    assert [d.code for d in compile_spec(_spec(task_id)).errors] == ["MLW106"]


def test_json_workflow_id_with_a_trailing_newline_is_refused():
    spec = _spec()
    spec["workflow_id"] = "w\n"
    assert [d.code for d in compile_spec(spec).errors] == ["MLW106"]


def test_a_domain_ending_in_a_newline_is_refused():
    # `$` matches before a final newline; the name check must match the whole string
    assert [d.code for d in compile_spec(_spec(domain="gpu\n")).errors] == ["MLW204"]
    assert compile_spec(_spec(domain="gpu")).ok


def test_importing_a_file_that_is_not_mlw_never_echoes_its_content(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    main = tmp_path / "main.mlw"
    main.write_text(mlw(extra=f'import "{secret}"\n'))
    r = compile_file(main)
    assert found(r) == [("MLW105", 1, 8)]
    shown = json.dumps([d.to_dict() for d in r.diagnostics]) + repr(r.sources)
    assert "SECRETHASH" not in shown and "root:" not in shown


# ----------------------------------------------------------------------------- issue 13, point 9


@pytest.mark.parametrize("body, start, end", [
    ("resources { memory = 5 GiB }", 26, 31),
    ("resources { memory = 5 GiB\n    cpu = 2 }", 26, 31),
    ("resources { memory = 1.5 GiB  cpu = 2 }", 26, 33),
    ("timeout = 10 m\n    retry { attempts = 2 }", 15, 19),
])
def test_a_space_inside_a_quantity_is_one_error_at_the_quantity(body, start, end):
    text = f"workflow w {{\n  {PREP}\n  task t: model_training after prep {{\n    {body}\n  }}\n}}\n"
    r = compile_text(text, "t.mlw")
    assert [(d.code, d.span.line, d.span.column, d.span.end_column) for d in r.diagnostics] == [("MLW101", 4, start, end)]
    assert "without a space" in r.diagnostics[0].message


def test_a_misspelt_algorithm_gets_a_did_you_mean():
    r = compile_text(mlw().replace("gradient_boosting", "random_forests"), "t.mlw")
    assert [(d.code, d.hint) for d in r.diagnostics] == [("MLW206", "did you mean `random_forest`?")]


PARAMS = """workflow w {
  params { seed: int = 1  xs: list[int] = [1] }
  task prep: data_preprocessing { source = "sklearn:iris"  seed = params.seed }
  task ev: model_evaluation { data = prep.output  model = "models:/m/1"  when = params.xs == [1] }
}
"""


@pytest.mark.parametrize("name, value", [("seed", "9" * 5000), ("seed", "9" * 25), ("xs", "[" + "9" * 30 + "]")])
def test_parameter_overrides_beyond_64_bits_are_mlw212(name, value):
    r = compile_text(PARAMS, "p.mlw", params={name: value})
    assert [d.code for d in r.errors] == ["MLW212"] and "must lie within" in r.errors[0].message


def test_a_yaml_params_file_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(lines) + "\n")
    r = compile_text(PARAMS, "p.mlw", params_file=path)
    assert [d.code for d in r.errors] == ["MLW106"]


def test_a_version_header_of_4400_digits_is_mlw104():
    # found by bench/fuzz_compiler.py: int() of the header raised ValueError
    r = compile_text("mlw " + "9" * 4400 + "\n" + mlw(), "t.mlw")
    assert found(r) == [("MLW104", 1, 5)] and len(r.diagnostics[0].message) < 100
