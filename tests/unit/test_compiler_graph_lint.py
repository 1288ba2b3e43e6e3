"""Graph checks (cycles, order), lint rules, ignore comments, --strict,
and the plan's order and cache-key parts."""

from __future__ import annotations

import textwrap

import networkx as nx

from mlflowdsl import ir
from mlflowdsl.compiler import graph
from mlflowdsl.compiler.api import compile_text, lint_file


def compile_(text: str, **kw):
    return compile_text(textwrap.dedent(text).lstrip("\n"), "t.mlw", **kw)


CYCLE = """
    workflow w {
      task a: data_preprocessing after c { source = "x.csv" }
      task b: feature_extraction { data = a.output }
      task c: feature_extraction { data = b.output }
      task d: feature_extraction after d { data = a.output }
    }"""


def test_cycles_print_the_whole_path_from_the_smallest_id():
    r = compile_(CYCLE)
    assert [d.message for d in r.diagnostics] == ["dependency cycle: a -> b -> c -> a",
                                                  "dependency cycle: d -> d"]
    assert r.plan is None


def test_order_is_topological_then_by_id():
    g = nx.DiGraph([("p", "b"), ("p", "a"), ("a", "z"), ("b", "z")])
    assert graph.topological_order(g) == ["p", "a", "b", "z"]


def test_plan_lists_tasks_topologically_then_by_id():
    r = compile_("""
        workflow w {
          task z: data_preprocessing { source = "x.csv" }
          task m: model_evaluation { data = z.output  model = "models:/m/1" }
          task a: data_preprocessing { source = "y.csv" }
          task b: model_evaluation { data = a.output  model = "models:/m/1" }
        }""")
    assert [t.id for t in r.plan.tasks] == ["a", "b", "z", "m"]


LINTY = """
    workflow w {
      params {
        unused: int = 1   # mlw: ignore[MLW401]
        other:  int = 2
      }
      task prep: data_preprocessing { source = "sklearn:iris" }  # mlw: ignore[MLW402, MLW403]
      task lonely: data_preprocessing { source = "sklearn:wine" }
    }"""


def test_ignore_comments_silence_warnings_on_their_line():
    r = compile_(LINTY)
    assert r.ok
    assert sorted((d.code, d.span.line) for d in r.diagnostics) == [("MLW401", 4), ("MLW402", 7)]


def test_strict_turns_warnings_into_errors_and_no_plan_is_made():
    r = compile_(LINTY, strict=True)
    assert not r.ok and r.plan is None
    assert {d.severity for d in r.diagnostics} == {"error"}


def test_ignore_comments_do_not_silence_errors():
    r = compile_('workflow w {\n  task a: nope { }  # mlw: ignore[MLW201]\n}\n')
    assert [d.code for d in r.diagnostics] == ["MLW201"]


def test_when_that_depends_on_a_parameter_is_not_always_false():
    r = compile_("""
        workflow w {
          params { deploy: bool = false }
          task prep: data_preprocessing { source = "sklearn:iris" }
          task ev: model_evaluation { data = prep.output  when = params.deploy  model = "models:/m/1" }
          task ev2: model_evaluation { data = prep.output  when = not true  model = "models:/m/1" }
        }""")
    assert [(d.code, d.span.line) for d in r.diagnostics] == [("MLW404", 5)]


def test_lint_file_checks_without_building_a_plan(tmp_path):
    f = tmp_path / "w.mlw"
    f.write_text(textwrap.dedent(LINTY))
    r = lint_file(f)
    assert r.ok and r.plan is None and len(r.diagnostics) == 2


def test_key_part_follows_the_contract_and_changes_with_params_or_cache_version():
    base = """
        workflow w {
          task prep: data_preprocessing { source = "x.csv" }
          task ev: model_evaluation { data = prep.output  cache { version = "VERSION" }  model = "models:/m/1" }
        }"""
    p1 = compile_(base.replace("VERSION", "1")).plan
    p2 = compile_(base.replace("VERSION", "2")).plan
    t = p1.task("ev")
    assert t.key_part == ir.key_part(t.type, t.impl_version, t.uses, t.params, t.cache.version)
    assert p1.task("prep").key_part == p2.task("prep").key_part
    assert p1.task("ev").key_part != p2.task("ev").key_part
    assert p1.fingerprint != p2.fingerprint
    assert p1.fingerprint == p1.compute_fingerprint()


def test_tunings_are_lowered_with_sorted_search_dims():
    r = compile_("""
        workflow w {
          task prep: data_preprocessing { source = "sklearn:iris" }
          task train: model_training after prep { algorithm = "gradient_boosting" }
          tune train {
            search {
              n_estimators  = int(10, 100)
              learning_rate = float(1e-4, 1e-1, log = true)
              max_depth     = int(2, 8, step = 2)
              loss          = choice("log_loss", "exponential")
            }
            objective = maximize(accuracy)
            trials = 30  parallel = 2  sampler = random  pruner = median  seed = 3  timeout = 30m
          }
          task ev: model_evaluation { model = train.model  data = prep.output }
        }""")
    assert r.ok, r.diagnostics
    (t,) = r.plan.tunings
    assert [d.name for d in t.search] == ["learning_rate", "loss", "max_depth", "n_estimators"]
    lr = t.search[0]
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-1, True)
    assert t.search[1].choices == ["log_loss", "exponential"]
    assert t.search[2].step == 2
    assert (t.objective.direction, t.objective.metric, t.trials, t.parallel) == ("maximize", "accuracy", 30, 2)
    assert (t.sampler, t.pruner, t.seed, t.timeout) == ("random", "median", 3, 1800.0)
