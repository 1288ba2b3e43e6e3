"""One test per diagnostic code: the code, the line and the column (never the prose)."""

from __future__ import annotations

import json
import textwrap

import pytest

from mlflowdsl.compiler.api import compile_file, compile_spec, compile_text
from mlflowdsl.grammar.diagnostics import CODES


def where(text: str, file: str = "t.mlw", **kw) -> list[tuple]:
    """(code, line, column) of every diagnostic; (code, subject) for span-less ones."""
    result = compile_text(textwrap.dedent(text).lstrip("\n"), file, **kw)
    return [(d.code, d.span.line, d.span.column) if d.span else (d.code, d.subject) for d in result.diagnostics]


PREP = 'task prep: data_preprocessing { source = "sklearn:iris" }'


# ----------------------------------------------------------------------------- MLW1xx


def test_mlw101_syntax_error():
    # the `:` is missing before the type
    assert where("workflow w {\n  task a data_preprocessing { }\n}\n") == [("MLW101", 2, 10)]


def test_mlw102_invalid_string_literal():
    assert where('workflow w {\n  name = "bad \\q escape"\n}\n') == [("MLW102", 2, 15)]


def test_mlw103_unknown_unit():
    found = where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            resources {{ memory = 4Gx }}
          }}
        }}""")
    assert found == [("MLW103", 4, 27)]  # the unit


def test_mlw103_unknown_unit_in_seed_string():
    r = compile_spec({"workflow_id": "w", "tasks": [
        {"task_id": "p", "task_type": "data_preprocessing", "parameters": {"source": "x.csv"},
         "resources": {"memory": "4Gx"}}]})
    assert [d.code for d in r.diagnostics] == ["MLW103"]


def test_mlw104_unsupported_language_version():
    assert where("mlw 7\nworkflow w { }\n") == [("MLW104", 1, 5)]


def test_mlw105_cannot_read_file(tmp_path):
    missing = tmp_path / "nope.mlw"
    r = compile_file(missing)
    assert [(d.code, d.subject) for d in r.diagnostics] == [("MLW105", str(missing))]


def test_mlw105_missing_import_points_at_the_import(tmp_path):
    main = tmp_path / "main.mlw"
    main.write_text('import "lib/missing.mlw"\nworkflow w {\n  ' + PREP + "\n}\n")
    r = compile_file(main)
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("MLW105", 1, 8)]


def test_mlw106_invalid_seed_document():
    text = '{\n  "workflow_id": "w",\n  "tasks": [\n    {"task_id": "a", "task_typ": "custom"}\n  ]\n}\n'
    found = where(text, "w.json")
    assert ("MLW106", 4, 6) in found


def test_mlw106_invalid_json_syntax():
    assert where('{"workflow_id": "w",\n  "tasks": [}', "w.json") == [("MLW106", 2, 13)]


def test_mlw108_number_out_of_range():
    assert where(f"workflow w {{\n  {PREP}\n  task t: model_training after prep {{ seed = 99999999999999999999 }}\n}}\n") \
        == [("MLW108", 3, 46)]


def test_mlw109_template_expansion_limit():
    levels = ["template t0() { " + PREP + " }"]
    levels += [f"template t{i}() {{ use x = t{i - 1}()  use y = t{i - 1}() }}" for i in range(1, 15)]
    assert where("\n".join(levels) + "\nworkflow w {\n  use all = t14()\n}\n") == [("MLW109", 17, 3)]


def test_mlw107_no_workflow():
    assert where("template t(x) { output y = x }\n") == [("MLW107", 1, 1)]


# ----------------------------------------------------------------------------- MLW2xx


def test_mlw201_unknown_task_type():
    assert where("workflow w {\n  task a: model_trainin { }\n}\n") == [("MLW201", 2, 11)]


def test_mlw202_unknown_block():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            cahce {{ strategy = disk }}
          }}
        }}""") == [("MLW202", 4, 5)]


def test_mlw203_unknown_attribute():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            algoritm = "svm"
          }}
        }}""") == [("MLW203", 4, 5)]


def test_mlw203_unknown_hyperparameter_points_at_its_key():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            hyperparameters = {{ max_depth = 3, n_estimator = 200 }}
          }}
        }}""") == [("MLW203", 4, 40)]


def test_mlw203_hyperparameter_written_as_an_attribute_gets_a_pointed_hint():
    r = compile_text(f"workflow w {{\n  {PREP}\n  task t: model_training after prep {{ n_estimators = 5 }}\n}}\n", "t.mlw")
    (d,) = r.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("MLW203", 3, 39)
    assert "hyperparameters = { n_estimators" in d.hint


def test_mlw203_unknown_field_in_directive_block():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            retry {{ attempt = 2 }}
          }}
        }}""") == [("MLW203", 4, 13)]


def test_mlw204_wrong_value_type():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            seed = "one"
          }}
        }}""") == [("MLW204", 4, 12)]


def test_mlw204_quantity_of_the_wrong_kind():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            timeout = 4GiB
          }}
        }}""") == [("MLW204", 4, 15)]


def test_mlw204_input_of_the_wrong_kind():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{ }}
          task v: model_validation {{ model = t.model  data = t.metrics }}
        }}""") == [("MLW204", 4, 54)]


def test_mlw205_missing_required_attribute():
    # data_preprocessing needs a source
    assert where("workflow w {\n  task prep: data_preprocessing { seed = 1 }\n}\n") == [("MLW205", 2, 8)]


def test_mlw206_value_out_of_range():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{
            retry {{ attempts = 0 }}
          }}
        }}""") == [("MLW206", 4, 24)]


def test_mlw206_parameter_default_out_of_range():
    assert where("workflow w {\n  params {\n    f: float = 2 in 0..1\n  }\n}\n") == [("MLW206", 3, 16)]


def test_mlw207_unknown_task_in_reference():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training {{ data = prepp.output }}
        }}""") == [("MLW207", 3, 35)]  # the task name


def test_mlw208_unknown_output_in_reference():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training {{ data = prep.dataset }}
        }}""") == [("MLW208", 3, 40)]  # the output name


def test_mlw209_duplicate_task_id():
    assert where(f"""
        workflow w {{
          {PREP}
          {PREP}
        }}""") == [("MLW209", 3, 8)]


def test_mlw209_duplicate_parameter_and_attribute():
    found = where("""
        workflow w {
          params {
            a: int = 1
            a: int = 2
          }
          task prep: data_preprocessing { source = "x.csv"  source = "y.csv" }
        }""")
    assert found == [("MLW209", 4, 5)]  # the params phase stops before the tasks
    found = where("""
        workflow w {
          task prep: data_preprocessing { source = "x.csv"  source = "y.csv" }
        }""")
    assert found == [("MLW209", 2, 53)]


def test_mlw210_unknown_parameter_reference_and_override():
    assert where("""
        workflow w {
          params { seed: int = 1 }
          task prep: data_preprocessing { source = "x.csv"  seed = params.sed }
        }""") == [("MLW210", 3, 67)]
    assert where("workflow w {\n  params { seed: int = 1 }\n}\n", params={"sed": "2"}) == [("MLW210", "-p sed")]


def test_mlw211_missing_required_parameter():
    assert where("workflow w {\n  params {\n    lr: float\n  }\n}\n") == [("MLW211", 3, 5)]


def test_mlw212_ill_typed_parameter():
    assert where("workflow w {\n  params {\n    n: int = \"x\"\n  }\n}\n") == [("MLW212", 3, 14)]
    assert where("workflow w {\n  params { n: int = 1 }\n}\n", params={"n": "many"}) == [("MLW212", "-p n")]


def test_mlw212_params_file(tmp_path):
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps({"n": "many"}))
    assert where("workflow w {\n  params { n: int = 1 }\n}\n", params_file=pf) == [("MLW212", f"{pf}: n")]


TUNE = """
    workflow w {{
      task prep: data_preprocessing {{ source = "sklearn:iris" }}
      task t: {type} after prep {{ {body} }}
      tune t {{
        search {{ {search} }}
        objective = maximize(accuracy)
        {extra}
      }}
    }}"""


def tune(search: str, type_: str = "model_training", body: str = 'algorithm = "random_forest"', extra: str = ""):
    return where(TUNE.format(type=type_, body=body, search=search, extra=extra))


def test_mlw213_tune_on_a_type_without_hyperparameters():
    assert tune("k = int(1, 5)", "feature_extraction", 'method = "pca"') == [("MLW213", 4, 8)]


def test_mlw214_unknown_hyperparameter():
    assert tune("n_estimator = int(10, 100)") == [("MLW214", 5, 14)]


@pytest.mark.parametrize("search", [
    "max_depth = int(20, 3)",                       # min > max
    "criterion = choice()",                         # empty choice
    "min_samples_split = float(0, 1, log = true)",  # log scale with low <= 0
])
def test_mlw215_invalid_search_space(search):
    name = search.split(" ")[0]
    # `    search { ` is 13 columns; the diagnostic points at the value after `NAME = `
    assert tune(search) == [("MLW215", 5, 14 + len(name) + 3)]


def test_mlw215_unknown_sampler():
    assert tune("max_depth = int(3, 20)", extra="sampler = tpx") == [("MLW215", 7, 15)]


def test_mlw216_unknown_template_and_bad_arguments():
    assert where(f"""
        workflow w {{
          {PREP}
          use a = nothing(data = prep.output)
        }}""") == [("MLW216", 3, 11)]
    assert where(f"""
        template tr(data) {{
          task train: model_training {{ data = data }}
          output model = train.model
        }}
        workflow w {{
          {PREP}
          use a = tr(dta = prep.output)
        }}""") == [("MLW216", 7, 3), ("MLW216", 7, 14)]  # the use lacks `data`; `dta` is unknown


def test_mlw217_ambiguous_input():
    assert where(f"""
        workflow w {{
          {PREP}
          task other: data_preprocessing {{ source = "sklearn:wine" }}
          task t: model_training after prep, other {{ }}
        }}""") == [("MLW217", 4, 8)]


def test_mlw218_custom_function_cannot_be_loaded():
    assert where("""
        workflow w {
          task c: custom { uses = "no_such_module_xyz:fn" }
        }""") == [("MLW218", 2, 27)]


def test_mlw219_invalid_expression():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{ algorithm = "${{prep.output}}" }}
        }}""")[0][:2] == ("MLW219", 3)


# ----------------------------------------------------------------------------- MLW3xx


def test_mlw301_dependency_cycle():
    found = where("""
        workflow w {
          task a: data_preprocessing after c { source = "x.csv" }
          task b: feature_extraction { data = a.output }
          task c: feature_extraction { data = b.output }
        }""")
    assert found == [("MLW301", 3, 39)]


def test_mlw302_import_cycle(tmp_path):
    (tmp_path / "a.mlw").write_text('import "b.mlw"\nworkflow w { }\n')
    (tmp_path / "b.mlw").write_text('\nimport "a.mlw"\ntemplate t(x) { output y = x }\n')
    r = compile_file(tmp_path / "a.mlw")
    assert [(d.code, d.span.file, d.span.line, d.span.column) for d in r.diagnostics] == [
        ("MLW302", str(tmp_path / "b.mlw"), 2, 8)]


def test_mlw303_unknown_task_in_after():
    assert where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep, nope {{ }}
        }}""") == [("MLW303", 3, 38)]


# ----------------------------------------------------------------------------- MLW4xx


def test_mlw401_unused_parameter():
    assert where(f"""
        workflow w {{
          params {{ unused: int = 1 }}
          {PREP}
          task ev: model_evaluation {{ data = prep.output  model = "models:/m/1" }}
        }}""") == [("MLW401", 2, 12)]


def test_mlw402_result_never_used():
    assert where(f"""
        workflow w {{
          {PREP}
        }}""") == [("MLW402", 2, 8)]


def test_mlw403_cache_disabled_on_expensive_task():
    found = where(f"""
        workflow w {{
          {PREP}
          task t: model_training after prep {{ cache {{ strategy = none }} }}
          task ev: model_evaluation {{ model = t.model  data = prep.output }}
        }}""")
    assert found == [("MLW403", 3, 8)]


def test_mlw404_when_always_false():
    assert where(f"""
        workflow w {{
          {PREP}
          task ev: model_evaluation {{ data = prep.output  when = false  model = "models:/m/1" }}
        }}""") == [("MLW404", 3, 58)]


def _data_workflow(tmp_path, body: str):
    (tmp_path / "d.csv").write_text("customer_id,y\n" + "".join(f"c{i},{i % 2}\n" for i in range(60)))
    path = tmp_path / "w.mlw"
    path.write_text(f"workflow w {{\n  task prep: data_preprocessing {{ {body} }}\n"
                    "  task ev: model_evaluation { data = prep.output  model = \"models:/m/1\" }\n}\n")
    return [(d.code, d.span.line, d.span.column) for d in compile_file(path).diagnostics]


def test_mlw220_data_column_missing(tmp_path):
    assert _data_workflow(tmp_path, 'source = "d.csv"  target = "x"  drop = ["customer_id"]') == [("MLW220", 2, 62)]


def test_mlw405_data_file_not_found(tmp_path):
    assert _data_workflow(tmp_path, 'source = "gone.csv"  target = "y"') == [("MLW405", 2, 44)]


def test_mlw406_id_like_column(tmp_path):
    assert _data_workflow(tmp_path, 'source = "d.csv"  target = "y"') == [("MLW406", 2, 44)]


def test_every_code_has_a_test():
    tested = {name.split("_")[1].upper() for name in globals() if name.startswith("test_mlw")}
    assert set(CODES) <= tested, sorted(set(CODES) - tested)


def test_mlw303_alone_even_when_the_unknown_task_was_to_fill_an_input():
    assert where("""
        workflow w {
          task t: model_training after nope { }
        }""") == [("MLW303", 2, 32)]


def test_mlw215_grid_search_over_a_continuous_dimension():
    assert tune("learning_rate = float(0.01, 0.3)", "model_training", 'algorithm = "gradient_boosting"',
                extra="sampler = grid") == [("MLW215", 5, 30)]
    # with a step it is fine (only the lint warning that nothing uses `t` remains)
    assert tune("learning_rate = float(0.01, 0.3, step = 0.01)", "model_training", 'algorithm = "gradient_boosting"',
                extra="sampler = grid") == [("MLW402", 3, 8)]


def test_mlw215_objective_on_a_training_set_score():
    text = TUNE.format(type="model_training", body='algorithm = "random_forest"',
                       search="max_depth = int(3, 20)", extra="").replace("maximize(accuracy)", "maximize(train_accuracy)")
    assert where(text) == [("MLW215", 6, 17)]
