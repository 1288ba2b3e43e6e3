"""`tune` blocks on a real two-worker Dask cluster: trials as tasks, cache, pruning, best model
downstream (runtime/tuning/)."""

from __future__ import annotations

import pytest

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.settings import Settings

WORKFLOW = """mlw 1
workflow tuned {{
  defaults {{ cache {{ strategy = disk }} }}
  task prepare: data_preprocessing {{
    source = "sklearn:breast_cancer"
    scale  = "standard"
    seed   = 0
  }}
  task train: model_training {{
    data            = prepare.output
    algorithm       = "gradient_boosting"
    hyperparameters = {{ n_estimators = 30, learning_rate = 0.005, max_depth = 1 }}
    cv              = 3
    seed            = 0
  }}
  task evaluate: model_evaluation {{
    models = [train.model]
    data   = prepare.output
  }}
  {tune}
}}
"""

TUNE = """tune train {{
    search {{
      learning_rate = float(0.05, 0.5, log = true)
      max_depth     = int(1, 4)
    }}
    objective = maximize(cv_accuracy)
    trials    = {trials}
    parallel  = {parallel}
    pruner    = {pruner}
    seed      = {seed}
  }}"""


def compile_workflow(tmp_path, tune: str):
    path = tmp_path / "tuned.mlw"
    path.write_text(WORKFLOW.format(tune=tune))
    return compile_text(path.read_text(), str(path)).raise_for_errors()


def tune_block(*, trials=6, parallel=1, pruner="none", seed=3) -> str:
    return TUNE.format(trials=trials, parallel=parallel, pruner=pruner, seed=seed)


@pytest.fixture
def settings(tmp_path, dask_cluster):
    return Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)


def run(tmp_path, settings, tune: str):
    execution = run_plan(compile_workflow(tmp_path, tune), settings, base_dir=str(tmp_path))
    assert execution.status == "succeeded", execution.tasks
    return execution


def overlapping(rows) -> bool:
    spans = sorted((r["started"], r["ended"]) for r in rows if r["started"] and r["ended"])
    return any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_study_beats_the_defaults_runs_two_trials_at_once_and_the_best_model_flows_downstream(tmp_path, settings):
    untuned = run(tmp_path, settings, "")
    tuned = run(tmp_path, settings, tune_block(trials=6, parallel=2))
    study = tuned.tasks["train"].study
    assert study is not None, (tuned.tasks["train"], compile_workflow(tmp_path, tune_block()).tunings)
    assert study["counts"] == {"complete": 6}
    default_score = untuned.tasks["train"].metrics["cv_accuracy"]
    assert study["best_value"] > default_score + 0.01, (study["best_value"], default_score)
    # the tuned task's record is the best trial's, and evaluate scored that model
    assert tuned.tasks["train"].metrics["cv_accuracy"] == pytest.approx(study["best_value"])
    assert tuned.tasks["evaluate"].metrics["accuracy"] == pytest.approx(tuned.tasks["train"].metrics["accuracy"])
    assert tuned.tasks["train"].cache_key != untuned.tasks["train"].cache_key
    # parallel = 2 on two single-thread workers: trials ran at the same time, on both workers
    trained = [r for r in study["trials"] if not r["cached"]]
    assert overlapping(trained), trained
    assert len({r["worker"] for r in trained}) == 2
    assert set(study["importances"]) == {"learning_rate", "max_depth"}


def test_a_repeated_study_with_the_same_seed_trains_nothing(tmp_path, settings):
    first = run(tmp_path, settings, tune_block(trials=4, seed=11)).tasks["train"]
    assert first.status == "succeeded"
    assert first.study["trainings"] == 4 and first.study["cache_hits"] == 0
    # unchanged: the tuned task itself is served from the cache, no study runs
    again = run(tmp_path, settings, tune_block(trials=4, seed=11))
    assert again.tasks["train"].status == "cached" and again.tasks["train"].study == first.study
    assert again.tasks["evaluate"].status == "cached"
    # a larger budget runs the study again: the first four trials are cache hits
    second = run(tmp_path, settings, tune_block(trials=5, seed=11)).tasks["train"].study
    assert second["trainings"] == 1 and second["cache_hits"] == 4
    assert second["best_value"] >= first.study["best_value"]


def test_median_pruner_stops_boosting_trials_early(tmp_path, settings):
    study = run(tmp_path, settings, tune_block(trials=10, pruner="median", seed=5)).tasks["train"].study
    pruned = [r for r in study["trials"] if r["state"] == "pruned"]
    assert pruned, study["counts"]
    # stopped before the last of the 30 stages, and the best trial is a complete one
    assert all(r["last_step"] < 30 for r in pruned)
    assert study["trials"][study["best_trial"]]["state"] == "complete"


def test_an_objective_on_the_training_score_or_an_unknown_metric_fails_the_task_clearly(tmp_path, settings):
    block = tune_block(trials=3)
    for metric, words in (("train_accuracy", "is a training-set score"),
                          ("cv_accuracyy", "reports no metric 'cv_accuracyy'")):
        if metric.startswith("train_"):
            # The compiler refuses it (MLW215); a hand-built plan still reaches the runtime's check.
            plan = compile_workflow(tmp_path, block)
            plan = plan.model_copy(update={"tunings": [t.model_copy(update={"objective": t.objective.model_copy(
                update={"metric": metric})}) for t in plan.tunings]})
        else:
            plan = compile_workflow(tmp_path, block.replace("maximize(cv_accuracy)", f"maximize({metric})"))
        execution = run_plan(plan, settings, base_dir=str(tmp_path))
        assert execution.status == "failed"
        assert words in execution.tasks["train"].error
        assert execution.tasks["evaluate"].status == "skipped"
    assert "cv_accuracy" in execution.tasks["train"].error  # the metrics it does report are listed


def test_grid_search_visits_each_point_once_and_cmaes_with_hyperband_runs(tmp_path, settings):
    grid = TUNE.format(trials=50, parallel=2, pruner="none", seed=1).replace(
        "learning_rate = float(0.05, 0.5, log = true)", "learning_rate = float(0.1, 0.3, step = 0.1)"
    ).replace("max_depth     = int(1, 4)", "max_depth     = int(1, 2)").replace("parallel", "sampler = grid\n    parallel")
    study = run(tmp_path, settings, grid).tasks["train"].study
    points = sorted((round(t["params"]["learning_rate"], 6), t["params"]["max_depth"]) for t in study["trials"])
    assert points == [(0.1, 1), (0.1, 2), (0.2, 1), (0.2, 2), (0.3, 1), (0.3, 2)]  # capped at the grid's 6
    cmaes = tune_block(trials=4, parallel=2, pruner="hyperband").replace("parallel", "sampler = cmaes\n    parallel")
    study = run(tmp_path, settings, cmaes).tasks["train"].study
    assert (study["sampler"], study["pruner"]) == ("cmaes", "hyperband")
    assert sum(study["counts"].values()) == 4 and study["best_value"] is not None


def test_the_study_timeout_stops_asking_for_trials(tmp_path, settings):
    block = tune_block(trials=500, seed=9).replace("seed      = 9", "seed      = 9\n    timeout   = 3s")
    execution = run(tmp_path, settings, block)
    study = execution.tasks["train"].study
    ran = sum(study["counts"].values())
    assert 1 <= ran < 500 and study["counts"].get("complete", 0) == ran
    # no new trial asked for after the deadline (running ones finish; 2 s for a busy scheduler)
    started = sorted(t["started"] for t in study["trials"] if t["started"])
    assert started[-1] - execution.tasks["train"].started < 5.0
