"""The resolve pass as seen in the compiled plan: parameters, interpolation, foreach,
templates and imports, when, defaults."""

from __future__ import annotations

import textwrap

import pytest

from mlflowdsl.compiler.api import compile_file, compile_text


def plan(text: str, **kw):
    r = compile_text(textwrap.dedent(text).lstrip("\n"), "t.mlw", **kw)
    assert r.ok, [(d.code, d.message) for d in r.diagnostics]
    return r.plan


PARAMS = """
    workflow w {
      params {
        source:  str           = "sklearn:iris"
        size:    float         = 0.25 in 0..1
        algos:   list[str]     = ["random_forest", "knn"]
        budget:  duration      = 5m
        mem:     size          = 512MiB
        deploy:  bool          = false
        env:     str           = "dev" in ["dev", "prod"]
        weights: map[str, float] = { a = 1, b = 2.5 }
      }
      task prep: data_preprocessing {
        source = params.source  test_size = params.size  target = "${params.env}_label"
        timeout = params.budget
        resources { memory = params.mem }
      }
      task ev: model_evaluation {
        data = prep.output
        model = "models:/m/1"
        when = params.deploy or params.env == "prod"
      }
      task other: model_evaluation { data = prep.output  description = "${params.algos} ${params.weights}"  model = "models:/m/1" }
    }"""


def test_parameter_defaults_are_typed_and_converted():
    p = plan(PARAMS.replace('  description = "${params.algos} ${params.weights}"', ""))
    assert p.workflow.params == {
        "source": "sklearn:iris", "size": 0.25, "algos": ["random_forest", "knn"], "budget": 300.0,
        "mem": 512 * 2**20, "deploy": False, "env": "dev", "weights": {"a": 1.0, "b": 2.5},
    }
    prep = p.task("prep")
    assert prep.params["test_size"] == 0.25
    assert prep.params["target"] == "dev_label"
    assert prep.timeout == 300.0 and prep.resources.memory == 512 * 2**20
    assert p.task("ev").skip is True


@pytest.mark.parametrize("override, expected", [
    ({"size": "0.5"}, {"size": 0.5}),
    ({"algos": "svm,knn"}, {"algos": ["svm", "knn"]}),
    ({"algos": '["svm"]'}, {"algos": ["svm"]}),
    ({"budget": "2h"}, {"budget": 7200.0}),
    ({"budget": "90"}, {"budget": 90.0}),
    ({"mem": "1GiB"}, {"mem": 2**30}),
    ({"deploy": "true"}, {"deploy": True}),
    ({"weights": "{a: 3}"}, {"weights": {"a": 3.0}}),
])
def test_overrides_are_parsed_by_the_declared_type(override, expected):
    p = plan(PARAMS.replace('  description = "${params.algos} ${params.weights}"', ""), params=override)
    for key, value in expected.items():
        assert p.workflow.params[key] == value


def test_when_decided_by_a_parameter_and_the_dependents_are_skipped_too():
    text = """
        workflow w {
          params { deploy: bool = false }
          task prep: data_preprocessing { source = "sklearn:iris" }
          task train: model_training after prep { when = params.deploy }
          task ev: model_evaluation { model = train.model  data = prep.output }
        }"""
    p = plan(text)
    assert [(t.id, t.skip) for t in p.tasks] == [("prep", False), ("train", True), ("ev", True)]
    p = plan(text, params={"deploy": "yes"})
    assert not any(t.skip for t in p.tasks)


def test_params_file_yaml_is_overridden_by_p(tmp_path):
    pf = tmp_path / "p.yaml"
    pf.write_text("size: 0.4\nenv: prod\n")
    p = plan(PARAMS.replace('  description = "${params.algos} ${params.weights}"', ""),
             params_file=pf, params={"env": "dev"})
    assert p.workflow.params["size"] == 0.4 and p.workflow.params["env"] == "dev"


def test_choice_violation_from_override_names_the_flag():
    r = compile_text(textwrap.dedent(PARAMS), "t.mlw", params={"env": "staging"})
    assert [(d.code, d.subject) for d in r.diagnostics] == [("MLW206", "-p env")]


FOREACH = """
    workflow w {
      params { algos: list[str] = ["random_forest", "knn"] }
      task prep: data_preprocessing { source = "sklearn:iris" }
      task train: model_training foreach algo in params.algos {
        data = prep.output
        algorithm = algo
      }
      task pick: model_evaluation { model = train[knn].model  data = prep.output }
      task all: model_evaluation { models = train[*].model  data = prep.output }
      task lit: model_training foreach n in [10, 20] {
        data = prep.output
        hyperparameters = { n_estimators = n }
        domain = "d${n}"
      }
      task after_all: model_evaluation after lit { models = lit[*].model  data = prep.output }
    }"""


def test_foreach_copies_and_references():
    p = plan(FOREACH)
    ids = [t.id for t in p.tasks]
    assert {"train[random_forest]", "train[knn]", "lit[10]", "lit[20]"} <= set(ids)
    assert p.task("train[knn]").params["algorithm"] == "knn"
    assert p.task("pick").params["model"] == {"$ref": "train[knn].model"}
    assert p.task("all").params["models"] == [{"$ref": "train[random_forest].model"}, {"$ref": "train[knn].model"}]
    assert p.task("lit[20]").params["hyperparameters"] == {"n_estimators": 20}
    assert p.task("lit[10]").domain == "d10"
    assert p.task("after_all").dependencies == ["lit[10]", "lit[20]", "prep"]


def test_foreach_override_changes_the_copies():
    p = plan(FOREACH, params={"algos": "svm,knn"})
    assert [t.id for t in p.tasks if t.id.startswith("train[")] == ["train[knn]", "train[svm]"]
    # a copy that the override removed can no longer be referenced
    r = compile_text(textwrap.dedent(FOREACH), "t.mlw", params={"algos": "svm"})
    assert [d.code for d in r.diagnostics] == ["MLW207"]


def test_template_use_expands_under_a_prefix(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "t.mlw").write_text(textwrap.dedent("""
        template train_and_check(data, algo: str, min_accuracy: float = 0.9) {
          task train: model_training { data = data  algorithm = algo }
          task check: model_validation {
            model = train.model  data = data
            thresholds = { accuracy = min_accuracy }
          }
          output model = check.model
        }"""))
    main = tmp_path / "main.mlw"
    main.write_text(textwrap.dedent("""
        import "lib/t.mlw"
        workflow w {
          task prep: data_preprocessing { source = "sklearn:iris" }
          use rf = train_and_check(data = prep.output, algo = "random_forest")
          use gb = train_and_check(data = prep.output, algo = "gradient_boosting", min_accuracy = 0.8)
          task deploy: model_deployment { model = rf.model  name = "m" }
          task cmp: model_evaluation { models = [rf.model, gb.model]  data = prep.output }
        }"""))
    r = compile_file(main)
    assert r.ok, r.diagnostics
    p = r.plan
    assert {"rf.train", "rf.check", "gb.train", "gb.check"} <= {t.id for t in p.tasks}
    assert p.task("rf.check").params["model"] == {"$ref": "rf.train.model"}
    assert p.task("gb.check").params["thresholds"] == {"accuracy": 0.8}
    assert p.task("deploy").params["model"] == {"$ref": "rf.check.model"}
    assert p.task("cmp").dependencies == ["gb.check", "prep", "rf.check"]
    assert p.task("rf.train").span.file == str(lib / "t.mlw")
    assert set(r.sources) == {str(main), str(lib / "t.mlw")}


def test_defaults_are_inherited_field_by_field():
    p = plan("""
        workflow w {
          defaults {
            resources { cpu = 2  memory = 1GiB }
            retry { attempts = 3  initial = 2s }
            cache { strategy = hybrid  ttl = 7d }
            timeout = 1h
            domain = training
          }
          task prep: data_preprocessing {
            source = "sklearn:iris"
            resources { memory = 2GiB  network = 1Gbps }
            retry { max = 30s }
            cache = memory
          }
          task ev: model_evaluation { data = prep.output  timeout = 30s  domain = "inference"  model = "models:/m/1" }
        }""")
    prep, ev = p.task("prep"), p.task("ev")
    assert prep.resources.model_dump() == {"cpu": 2.0, "memory": 2 * 2**30, "gpu": 0, "storage": 0,
                                           "network": 10**9}
    assert (prep.retry.attempts, prep.retry.initial, prep.retry.max) == (3, 2.0, 30.0)
    assert (prep.cache.strategy, prep.cache.ttl) == ("memory", 7 * 86400.0)
    assert (prep.timeout, prep.domain) == (3600.0, "training")
    assert (ev.timeout, ev.domain, ev.cache.strategy) == (30.0, "inference", "hybrid")


def test_builtin_defaults_when_nothing_is_said():
    t = plan('workflow w { task p: data_preprocessing { source = "x.csv" } }').task("p")
    assert (t.cache.strategy, t.retry.attempts, t.timeout, t.domain, t.resources.cpu) == ("disk", 1, None, "default", 1.0)


def test_output_means_the_default_output():
    p = plan("""
        workflow w {
          task prep: data_preprocessing { source = "x.csv" }
          task train: model_training { data = prep.output }
          task ev: model_evaluation { model = train.output  data = prep.output }
        }""")
    assert p.task("ev").params["model"] == {"$ref": "train.model"}
    assert p.task("train").outputs == ["model", "metrics"]


def test_interpolating_an_unbound_name_is_an_error_not_text():
    r = compile_text('workflow w {\n  task p: data_preprocessing foreach s in ["a"] { source = "${ss}.csv" }\n}\n', "t.mlw")
    assert [(d.code, d.span.line, d.hint) for d in r.diagnostics] == [("MLW219", 2, "did you mean `s`?")]


def test_absurd_nesting_is_a_diagnostic():
    n = 3000
    text = 'workflow w { task p: data_preprocessing { source = "x"  extra = ' + "[" * n + "]" * n + " } }"
    r = compile_text(text, "t.mlw")
    assert [d.code for d in r.diagnostics] == ["MLW219"] and r.plan is None
    doc = '{"workflow_id": "w", "tasks": [{"task_id": "a", "task_type": "custom", "parameters": {"x": '
    r = compile_text(doc + "[" * 100000 + "]" * 100000 + "}}]}", "t.json")
    assert [d.code for d in r.diagnostics] == ["MLW106"]


def test_none_clears_an_inherited_timeout_or_ttl():
    p = plan("""
        workflow w {
          defaults { timeout = 1h  cache { ttl = 1d } }
          task prep: data_preprocessing { source = "x.csv"  timeout = none  cache { ttl = none } }
          task ev: model_evaluation { data = prep.output  model = "models:/m/1" }
        }""")
    assert (p.task("prep").timeout, p.task("prep").cache.ttl) == (None, None)
    assert (p.task("ev").timeout, p.task("ev").cache.ttl) == (3600.0, 86400.0)


def test_after_a_template_use_waits_for_all_its_tasks():
    p = plan("""
        template pair(data) {
          task train: model_training { data = data }
          task check: model_validation { model = train.model  data = data }
          output model = check.model
        }
        workflow w {
          task prep: data_preprocessing { source = "x.csv" }
          use rf = pair(data = prep.output)
          task ev: model_evaluation after rf { data = prep.output  model = "models:/m/1" }
        }""")
    assert p.task("ev").dependencies == ["prep", "rf.check", "rf.train"]


def test_one_mistake_used_twice_by_a_template_is_reported_once():
    r = compile_text(textwrap.dedent("""
        template t(data) {
          task a: model_training { data = data }
          task b: model_validation { model = a.model  data = data }
          output m = b.model
        }
        workflow w { use x = t(data = prp.output) }"""), "t.mlw")
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("MLW207", 7, 31)]
