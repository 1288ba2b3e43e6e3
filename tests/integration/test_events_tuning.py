"""A tune block emits one tuning.trial_completed event per finished trial."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.api import run_plan
from mlflowdsl.settings import Settings
from tests.integration.test_tuning_runtime import compile_workflow, tune_block

pytestmark = pytest.mark.integration


def test_every_trial_is_an_event(tmp_path, dask_cluster):
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)
    ex = run_plan(compile_workflow(tmp_path, tune_block(trials=3, seed=5)), settings, base_dir=str(tmp_path))
    assert ex.status == "succeeded"
    events = [json.loads(line) for line in (tmp_path / "home" / "events.jsonl").read_text().splitlines()]
    trials = [e for e in events if e["type"] == "tuning.trial_completed"]
    assert sorted(t["payload"]["trial"] for t in trials) == [0, 1, 2]
    assert {t["payload"]["task_id"] for t in trials} == {"train"} and {t["execution_id"] for t in trials} == {ex.id}
    for t in trials:
        assert t["payload"]["state"] == "complete" and isinstance(t["payload"]["value"], float)
        assert set(t["payload"]["params"]) == {"learning_rate", "max_depth"}
    assert ex.tasks["train"].study["best_value"] == max(t["payload"]["value"] for t in trials)
    # trials finish before the tuned task does
    order = [e["type"] + ":" + str(e["payload"].get("task_id")) for e in events]
    assert max(i for i, e in enumerate(events) if e["type"] == "tuning.trial_completed") < order.index("task.completed:train")
