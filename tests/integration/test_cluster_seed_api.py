"""The seed's Python API: example 1 of SEED.md, embedded and against a Redis cluster."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mlflowdsl import DistributedOrchestrator, MLTaskSpec, TaskResult, WorkflowExecution, WorkflowSpec  # noqa: E402
from mlflowdsl.errors import CompileError  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# The seed's /data/training.csv does not exist and a CSV would need a `target` parameter the
# seed's example does not have; a bundled dataset keeps the example exactly in the seed's shape.
DATA = "sklearn:breast_cancer"


def seed_example_1(dataset_path: str) -> dict:
    """SEED.md example 1 with only ``dataset_path`` changed."""
    return {
        "workflow_id": "training_pipeline_v1",
        "name": "Model Training Pipeline",
        "tasks": [
            {
                "task_id": "preprocess_data",
                "task_type": "data_preprocessing",
                "dependencies": [],
                "parameters": {"dataset_path": dataset_path},
            },
            {
                "task_id": "train_model",
                "task_type": "model_training",
                "dependencies": ["preprocess_data"],
                "parameters": {"algorithm": "random_forest"},
            },
        ],
    }


HANG = """\
workflow slow {{
  task a: custom {{ uses = "tests.integration.tasks_for_tests:hang"  name = "a"  log_dir = "{logs}"  seconds = 8 }}
  task b: custom after a {{ uses = "tests.integration.tasks_for_tests:noop" }}
}}
"""


def test_seed_example_1_embedded(tmp_path):
    async def main():
        orchestrator = DistributedOrchestrator(settings=Settings(home=str(tmp_path / "home"), local_workers=1))
        async with orchestrator:
            execution_id = await orchestrator.submit_ml_workflow(seed_example_1(DATA))
            early = await orchestrator.get_execution(execution_id)
            assert isinstance(early, WorkflowExecution) and set(early.tasks) == {"preprocess_data", "train_model"}
            done = await orchestrator.wait(execution_id, timeout=120)
            health = await orchestrator.cluster_health()
            hanging = await orchestrator.submit_ml_workflow(HANG.format(logs=tmp_path / "logs"))
            await asyncio.sleep(1.0)
            await orchestrator.cancel(hanging)
            cancelled = await orchestrator.wait(hanging, timeout=60)
        return done, health, cancelled

    done, health, cancelled = asyncio.run(main())
    assert done.status == "succeeded", done.error
    assert isinstance(done.tasks["train_model"], TaskResult) and done.tasks["train_model"].status == "succeeded"
    assert health["mode"] == "embedded"
    assert cancelled.status == "cancelled" and cancelled.tasks["b"].status == "skipped"


def test_specs_as_models_and_bad_specs(tmp_path):
    spec = WorkflowSpec(workflow_id="w", tasks=[MLTaskSpec(task_id="a", task_type="data_preprocesing",
                                                           parameters={"source": "x.csv"})])
    with pytest.raises(CompileError) as err:
        spec.compile()
    assert any(d.code.startswith("MLW2") for d in err.value.diagnostics)


def test_seed_api_with_redis_serves_as_an_instance(tmp_path, redis_url, dask_cluster):
    settings = Settings(home=str(tmp_path / "home"), heartbeat_s=0.5, leader_lease_s=1.5, leader_renew_s=0.4)

    async def main():
        async with DistributedOrchestrator(redis_url=redis_url, scheduler=dask_cluster.address,
                                           settings=settings) as orchestrator:
            execution_id = await orchestrator.submit_ml_workflow(seed_example_1(DATA))
            done = await orchestrator.wait(execution_id, timeout=120)
            health = await orchestrator.cluster_health()
            # a second workflow as .mlw text, cancelled while queued or running
            slow = await orchestrator.submit_ml_workflow(HANG.format(logs=tmp_path / "logs"))
            await orchestrator.cancel(slow)
            cancelled = await orchestrator.wait(slow, timeout=60)
        return done, health, cancelled

    done, health, cancelled = asyncio.run(main())
    assert done.status == "succeeded", done.error
    assert health["mode"] == "cluster" and len(health["instances"]) == 1 and health["leader"] is not None
    assert cancelled.status == "cancelled"
