"""The seed's register_ml_model / deploy_ml_model dicts (registration only; serving is in the
integration tests)."""

from __future__ import annotations

import asyncio

import joblib
import pytest

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.sdk.models import register_ml_model
from mlflowdsl.settings import Settings
from test_registry_core import fitted

SEED_INFO = {"name": "fraud_detection_model", "version": "v1.2.0", "model_type": "classification",
             "framework": "sklearn"}


@pytest.fixture()
def settings(tmp_path):
    return Settings(home=str(tmp_path / "home"))


def test_seed_dict_without_an_artifact_and_nothing_registered_says_what_to_pass(settings):
    with pytest.raises(MlwError, match="nothing to register for 'fraud_detection_model'") as info:
        register_ml_model(SEED_INFO, settings=settings)
    assert "'artifact_path'" in info.value.hint and "'model_uri'" in info.value.hint


def test_seed_dict_registers_the_latest_version_under_its_label(settings):
    registry = open_registry(settings)
    first = registry.register("fraud_detection_model", fitted(0.9), lineage={"execution_id": "e1"})
    model_id = register_ml_model(SEED_INFO, settings=settings)
    assert model_id == "fraud_detection_model/2"
    mv = registry.resolve("models:/fraud_detection_model/v1.2.0")
    assert (mv.sha256, mv.model_type, mv.framework) == (first.sha256, "classification", "sklearn")
    assert mv.lineage == {"execution_id": "e1", "registered_from": "fraud_detection_model/1"}
    assert register_ml_model(SEED_INFO, settings=settings) == model_id  # idempotent


def test_artifact_path_and_model_keys(settings, tmp_path):
    path = tmp_path / "m.joblib"
    joblib.dump(fitted(0.7), path)
    assert register_ml_model({"name": "a", "artifact_path": str(path), "metrics": {"accuracy": 0.7}},
                             settings=settings) == "a/1"
    assert register_ml_model({"name": "a", "model": fitted(0.8)}, settings=settings) == "a/2"
    registry = open_registry(settings)
    assert registry.resolve("a/1").metrics == {"accuracy": 0.7}
    assert registry.resolve("a/2").metrics["accuracy"] == 0.8
    assert register_ml_model({"name": "b", "model_uri": "models:/a/1"}, settings=settings) == "b/1"


@pytest.mark.parametrize("info, message", [
    ({"version": "v1"}, "needs a 'name'"),
    ({"name": "a", "framwork": "x"}, "unknown model_info key"),
    ({"name": "../a"}, "not a safe name"),
    ({"name": "a", "artifact_path": "/nope.joblib"}, "model artifact not found"),
])
def test_bad_model_info(settings, info, message):
    with pytest.raises(MlwError, match=message):
        register_ml_model(info, settings=settings)


def test_the_orchestrator_exposes_register_ml_model(settings):
    from mlflowdsl.sdk import DistributedOrchestrator

    async def register() -> str:
        async with DistributedOrchestrator(settings=settings) as orchestrator:
            return await orchestrator.register_ml_model({"name": "m", "model": fitted(0.9), "version": "v1.2.0"})

    assert asyncio.run(register()) == "m/1"
    assert open_registry(settings).resolve("models:/m/v1.2.0").version == 1
