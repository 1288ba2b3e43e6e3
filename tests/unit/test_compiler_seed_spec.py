"""The seed's JSON/YAML workflow form compiles to the same IR as the equivalent .mlw."""

from __future__ import annotations

import json
import textwrap

import yaml

from mlflowdsl.compiler.api import compile_file, compile_spec, compile_text, load_plan

MLW = """
workflow training_pipeline_v1 {
  name = "Model Training Pipeline"
  params { target: str = "label"  seed: int = 7 }
  task preprocess_data: data_preprocessing {
    source = "/data/training.csv"
    target = params.target
    seed   = params.seed
    resources { cpu = 2  memory = 4GiB }
    cache { strategy = disk }
    retry { attempts = 3 }
  }
  task train_model: model_training after preprocess_data {
    algorithm = "random_forest"
    hyperparameters = { n_estimators = 10 }
    timeout = 10m
  }
}
"""

SPEC = {
    "workflow_id": "training_pipeline_v1",
    "name": "Model Training Pipeline",
    "global_parameters": {"target": "label", "seed": 7},
    "tasks": [
        {"task_id": "preprocess_data", "task_type": "data_preprocessing", "dependencies": [],
         "parameters": {"dataset_path": "/data/training.csv", "target": "${params.target}",
                        "seed": {"$ref": "params.seed"}},
         "resources": {"cpu": 2, "memory": "4GiB"}, "cache": "disk", "retry": {"max_attempts": 3}},
        {"task_id": "train_model", "task_type": "MODEL_TRAINING", "dependencies": ["preprocess_data"],
         "parameters": {"algorithm": "random_forest", "hyperparameters": {"n_estimators": 10}},
         "timeout": "10m"},
    ],
}


def test_json_and_mlw_compile_to_the_same_ir(tmp_path):
    mlw = tmp_path / "p.mlw"
    mlw.write_text(MLW)
    js = tmp_path / "p.json"
    js.write_text(json.dumps(SPEC, indent=2))
    a, b = compile_file(mlw), compile_file(js)
    assert a.ok and b.ok, (a.diagnostics, b.diagnostics)
    assert a.plan.canonical_dict(spans=False) == b.plan.canonical_dict(spans=False)
    assert a.plan.fingerprint == b.plan.fingerprint
    t = b.plan.task("preprocess_data")
    assert t.params["source"] == "/data/training.csv" and t.params["seed"] == 7
    assert (t.resources.memory, t.retry.attempts, t.cache.strategy) == (4 * 2**30, 3, "disk")
    assert b.plan.task("train_model").params["data"] == {"$ref": "preprocess_data.output"}


def test_yaml_form_and_dict_form_match_too(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text(yaml.safe_dump(SPEC))
    a = compile_file(y)
    b = compile_spec(SPEC)
    c = compile_text(MLW, "p.mlw")
    assert a.ok and b.ok and c.ok
    assert a.plan.fingerprint == b.plan.fingerprint == c.plan.fingerprint


def test_spans_point_at_each_task_in_the_json_text(tmp_path):
    js = tmp_path / "p.json"
    js.write_text(json.dumps(SPEC, indent=2))
    p = compile_file(js).plan
    lines = js.read_text().splitlines()
    for task in p.tasks:
        assert f'"task_id": "{task.id}"' in lines[task.span.line - 1]


def test_the_seed_documents_submit_example_compiles():
    spec = {
        "workflow_id": "training_pipeline_v1",
        "name": "Model Training Pipeline",
        "tasks": [
            {"task_id": "preprocess_data", "task_type": "data_preprocessing", "dependencies": [],
             "parameters": {"dataset_path": "/data/training.csv"}},
            {"task_id": "train_model", "task_type": "model_training", "dependencies": ["preprocess_data"],
             "parameters": {"algorithm": "random_forest"}},
        ],
    }
    r = compile_spec(spec)
    assert r.ok, r.diagnostics
    assert [t.id for t in r.plan.tasks] == ["preprocess_data", "train_model"]
    # the language reference's §10 example: string cache, max_attempts, memory with a unit
    r = compile_spec({"workflow_id": "training_pipeline_v1", "name": "Model Training Pipeline",
                      "global_parameters": {},
                      "tasks": [{"task_id": "preprocess_data", "task_type": "data_preprocessing",
                                 "dependencies": [], "parameters": {"dataset_path": "/data/training.csv"},
                                 "resources": {"cpu": 2, "memory": "4GiB"}, "cache": "disk",
                                 "retry": {"max_attempts": 3}}]})
    assert r.ok, r.diagnostics
    t = r.plan.task("preprocess_data")
    assert (t.resources.cpu, t.resources.memory, t.retry.attempts) == (2.0, 4 * 2**30, 3)


def test_unknown_keys_are_reported_with_a_suggestion():
    r = compile_spec({"workflow_id": "w", "taks": []})
    codes = [(d.code, d.hint) for d in r.diagnostics]
    assert ("MLW106", "did you mean `tasks`?") in codes


def test_load_plan_accepts_every_form(tmp_path):
    mlw = tmp_path / "p.mlw"
    mlw.write_text(MLW)
    plan = load_plan(mlw)
    compiled = tmp_path / "plan.json"
    compiled.write_text(plan.canonical_json())
    assert load_plan(compiled) == plan
    assert load_plan(plan) is plan
    assert load_plan(json.loads(plan.canonical_json())) == plan
    assert load_plan(SPEC).fingerprint == plan.fingerprint
    js = tmp_path / "p.json"
    js.write_text(json.dumps(SPEC))
    assert load_plan(js).fingerprint == plan.fingerprint


def test_load_plan_raises_compile_error_with_diagnostics(tmp_path):
    import pytest

    from mlflowdsl.errors import CompileError

    bad = tmp_path / "bad.mlw"
    bad.write_text(textwrap.dedent("workflow w { task a: nope { } }"))
    with pytest.raises(CompileError) as info:
        load_plan(bad)
    assert [d.code for d in info.value.diagnostics] == ["MLW201"]
    edited = json.loads(load_plan(SPEC).canonical_json())
    edited["tasks"][0]["params"]["seed"] = 8
    with pytest.raises(CompileError) as info:
        load_plan(edited)
    assert [d.code for d in info.value.diagnostics] == ["MLW106"]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"ir_version": "0", "workflow": {"id": "w"}}))
    with pytest.raises(CompileError) as info:
        load_plan(stale)
    assert [d.code for d in info.value.diagnostics] == ["MLW104"]


def test_seed_form_foreach_and_when():
    r = compile_spec({
        "workflow_id": "w",
        "global_parameters": {"algos": ["knn", "svm"], "deploy": False},
        "tasks": [
            {"task_id": "prep", "task_type": "data_preprocessing", "parameters": {"source": "sklearn:iris"}},
            {"task_id": "train", "task_type": "model_training", "dependencies": ["prep"],
             "foreach": {"var": "a", "in": "params.algos"}, "parameters": {"algorithm": "${a}"}},
            {"task_id": "ev", "task_type": "model_evaluation", "dependencies": ["prep"],
             "parameters": {"models": {"$ref": "train[*].model"}}, "when": "not params.deploy"},
            {"task_id": "dep", "task_type": "model_deployment", "when": "params.deploy",
             "parameters": {"model": {"$ref": "train[knn].model"}, "name": "m"}},
        ],
    })
    assert r.ok, r.diagnostics
    p = r.plan
    assert p.task("train[svm]").params["algorithm"] == "svm"
    assert p.task("ev").params["models"] == [{"$ref": "train[knn].model"}, {"$ref": "train[svm].model"}]
    assert (p.task("ev").skip, p.task("dep").skip) == (False, True)


def test_spans_point_at_tasks_and_parameters_in_yaml_too(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text(textwrap.dedent("""\
        workflow_id: w
        tasks:
          - task_id: prep
            task_type: data_preprocessing
            parameters:
              source: "x.csv"
          - task_id: train
            task_type: model_training
            dependencies: [prep]
            parameters:
              algoritm: svm
        """))
    r = compile_file(y)
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("MLW203", 11, 7)]


def test_json_spans_are_not_fooled_by_keys_inside_strings(tmp_path):
    js = tmp_path / "p.json"
    js.write_text(textwrap.dedent("""\
        {"workflow_id": "w", "tasks": [
          {"task_id": "prep", "task_type": "data_preprocessing",
           "parameters": {"source": "\\"algoritm\\": x"}},
          {"task_id": "train", "task_type": "model_training", "dependencies": ["prep"],
           "parameters": {"algoritm": "svm"}}]}
        """))
    r = compile_file(js)
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("MLW203", 5, 19)]  # at the key (its opening quote)
