"""Registering and deleting as re-runs and users do: identical bytes under the same name are
the existing version; a version a running deployment serves is not deleted by accident; the
registry records the hyperparameters a model was trained with, defaults included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_registry_core import fitted

from mlflowdsl.runtime.registry import open_registry
from mlflowdsl.runtime.registry.models import RegistryError
from mlflowdsl.settings import Settings


@pytest.fixture()
def registry(tmp_path):
    reg = open_registry(Settings(home=str(tmp_path / "home")))
    yield reg
    reg.close()


def test_identical_bytes_return_the_existing_version(registry):
    model = fitted(0.9)
    first = registry.register("fraud", model)
    assert registry.register("fraud", model).id == first.id == "fraud/1"
    other = registry.register("fraud", fitted(0.8, name="other"))
    assert other.version == 2
    assert registry.register("fraud", model).version == 1  # the version that has these bytes
    assert [mv.version for mv in registry.versions("fraud")] == [1, 2]
    assert registry.register("fraud", model, label="v1.0").version == 3  # a new label is a new version


def test_trained_models_record_their_hyperparameters(registry):
    mv = registry.register("fraud", fitted(0.9))
    assert mv.params["C"] == 1.0 and mv.params["max_iter"] == 100  # LogisticRegression's defaults


def _deployment(registry, model: str, pid: int, state: str = "running") -> None:
    registry.store.put_deployment({"name": "live", "model": model, "state": state, "pid": pid, "port": 1})


def test_a_served_version_is_not_deleted_without_force(registry):
    registry.register("fraud", fitted(0.9))
    registry.register("fraud", fitted(0.8, name="other"))
    _deployment(registry, "fraud/1", os.getpid())  # a live supervisor serves version 1
    with pytest.raises(RegistryError, match="fraud/1 is served by deployment\\(s\\) live") as refused:
        registry.delete("fraud", 1)
    assert "mlw deployments stop live" in refused.value.hint
    assert registry.delete("fraud", 2).id == "fraud/2"  # another version goes
    assert registry.delete("fraud", 1, force=True).id == "fraud/1"


def test_a_dead_or_stopped_deployment_does_not_block_deleting(registry):
    registry.register("fraud", fitted(0.9))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _deployment(registry, "fraud/1", gone.pid)
    assert registry.delete("fraud", 1).id == "fraud/1"


def test_the_same_training_key_is_the_same_model_whatever_its_bytes(registry):
    import pickle

    model = fitted(0.9)
    first = registry.register("fraud", model, lineage={"model_key": "k1", "execution_id": "e1"})
    copy = pickle.loads(pickle.dumps(model))  # what a re-run gets from the cache
    assert registry.register("fraud", copy, lineage={"model_key": "k1", "execution_id": "e2"}).id == first.id
    assert registry.register("fraud", fitted(0.7, name="x"), lineage={"model_key": "k3"}).version > 1
