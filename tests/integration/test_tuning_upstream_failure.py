"""A tuned task whose upstream fails is reported like any task cancelled by fail-fast: skipped,
naming the failed task (not "failed: the study was cancelled"), and the Python API's answer
carries the real cause."""

from __future__ import annotations

import pytest

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.sdk.tuning import result_of
from mlflowdsl.settings import Settings

pytestmark = pytest.mark.integration

WORKFLOW = """workflow w {
  task prep: data_preprocessing { source = "no_such_file.csv"  target = "y" }
  task train: model_training { data = prep.output  algorithm = "random_forest" }
  tune train {
    search { n_estimators = int(5, 20) }
    objective = maximize(accuracy)
    trials    = 2
  }
}
"""


def test_a_study_downstream_of_a_failure_is_skipped_with_the_cause(tmp_path, dask_cluster):
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)
    # the file exists when the workflow compiles (lint may read its header) and is gone when it runs
    data = tmp_path / "no_such_file.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    plan = compile_text(WORKFLOW, str(tmp_path / "w.mlw")).raise_for_errors()
    data.unlink()
    execution = run_plan(plan, settings, base_dir=str(tmp_path))
    assert execution.status == "failed"
    assert execution.tasks["prep"].status == "failed" and "data file not found" in execution.tasks["prep"].error
    train = execution.tasks["train"]
    assert train.status == "skipped" and "prep" in train.error and "study was cancelled" not in train.error
    answer = result_of(execution, "train")
    assert answer["error"].startswith("task prep failed:") and "data file not found" in answer["error"]
