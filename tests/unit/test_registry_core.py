"""The registry over SQLite: versions, labels, aliases with gates, checksums, unsafe names."""

from __future__ import annotations

import os

import pytest

from mlflowdsl.runtime.registry import Gate, GateRefused, RegistryError, open_registry, parse_ref
from mlflowdsl.settings import Settings
from stdlib_tasks.values import TrainedModel


def fitted(accuracy: float, name: str = "m") -> TrainedModel:
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    return TrainedModel(estimator=est, algorithm="logistic_regression", problem="classification",
                        feature_names=("x",), target="y", metrics={"accuracy": accuracy, "log_loss": 1 - accuracy},
                        raw_columns=("x",), name=name)


@pytest.fixture()
def registry(tmp_path):
    reg = open_registry(Settings(home=str(tmp_path / "home")))
    yield reg
    reg.close()


def test_versions_are_numbered_and_labels_kept(registry, tmp_path):
    first = registry.register("fraud", fitted(0.8), lineage={"execution_id": "e1", "task_id": "deploy"})
    second = registry.register("fraud", fitted(0.9), label="v1.2.0")
    assert (first.version, second.version) == (1, 2)
    assert second.label == "v1.2.0" and second.model_type == "classification" and second.framework == "sklearn"
    assert first.lineage == {"execution_id": "e1", "task_id": "deploy"}
    assert registry.resolve("models:/fraud/v1.2.0").version == 2
    assert registry.resolve("fraud").version == 2  # latest
    assert registry.resolve("models:/fraud/1").metrics["accuracy"] == 0.8
    assert first.artifact_path == os.path.join(str(tmp_path / "home"), "models", "fraud", "1", "model.joblib")
    loaded = registry.load("models:/fraud/1")
    assert list(loaded.predict([{"x": 0.0}, {"x": 3.0}])) == [0, 1]
    with pytest.raises(RegistryError, match="already has a different model labelled 'v1.2.0' \\(fraud/2\\)"):
        registry.register("fraud", fitted(0.7), label="v1.2.0")
    again = registry.register("fraud", second.artifact_path, label="v1.2.0")  # same bytes: a re-run
    assert again == second and len(registry.versions("fraud")) == 2


def test_unknown_references_say_what_exists(registry):
    registry.register("fraud", fitted(0.8))
    with pytest.raises(RegistryError, match=r"no registered model fraud/7") as info:
        registry.resolve("models:/fraud/7")
    assert "versions of fraud: 1" in info.value.hint
    with pytest.raises(RegistryError, match="has no alias 'champion'") as info:
        registry.resolve("models:/fraud@champion")
    assert "mlw models promote fraud" in info.value.hint


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", ".hidden", "x..y", ""])
def test_unsafe_names_are_rejected(registry, bad):
    with pytest.raises(RegistryError, match="not a safe name"):
        registry.register(bad, fitted(0.8))
    assert not os.path.exists(os.path.join(os.path.dirname(registry.artifact_root), "etc"))


def test_unsafe_references_are_rejected():
    with pytest.raises(RegistryError, match="not a safe name"):
        parse_ref("models:/../../etc/1")
    with pytest.raises(RegistryError, match="not a safe name"):
        parse_ref("models:/fraud/../x")


def test_checksum_is_verified_on_load(registry):
    mv = registry.register("fraud", fitted(0.8))
    with open(mv.artifact_path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(RegistryError, match="does not match its checksum"):
        registry.load(mv)


def test_promotion_gate_refuses_then_allows(registry):
    v1 = registry.register("fraud", fitted(0.90))
    first = registry.promote(v1, "champion", gate=Gate(min_delta=0.01))
    assert first.previous is None and "no champion to compare with" in first.gate[0]["message"]
    worse = registry.register("fraud", fitted(0.905))
    with pytest.raises(GateRefused) as info:
        registry.promote(worse, "champion", gate=Gate(min_delta=0.01))
    assert "accuracy = 0.9050 vs champion (fraud/1) 0.9000" in str(info.value)
    assert "below min_delta 0.01 by 0.0050" in str(info.value)
    assert registry.aliases("fraud") == {"champion": 1}
    better = registry.register("fraud", fitted(0.95))
    move = registry.promote(better, "champion", gate=Gate(min_delta=0.01))
    assert (move.previous, move.version) == (1, 3) and move.gate[0]["passed"]
    assert registry.resolve("fraud@champion").version == 3
    assert [(h.previous, h.version) for h in registry.history("fraud")] == [(None, 1), (1, 3)]


def test_loss_gate_is_direction_aware(registry):
    v1 = registry.register("m", fitted(0.9))  # log_loss 0.1
    registry.promote(v1, "champion")
    v2 = registry.register("m", fitted(0.8))  # log_loss 0.2: worse
    with pytest.raises(GateRefused, match="log_loss"):
        registry.promote(v2, "champion", gate=Gate(metrics=("log_loss",)))
    v3 = registry.register("m", fitted(0.95))  # log_loss 0.05: better by 50 %
    registry.promote(v3, "champion", gate=Gate(metrics=("log_loss",), min_relative=0.4))
    assert registry.aliases("m") == {"champion": 3}


def test_delete_refuses_alias_holder(registry):
    v1 = registry.register("fraud", fitted(0.8))
    registry.register("fraud", fitted(0.9))
    registry.promote(v1, "champion")
    with pytest.raises(RegistryError, match="holds the alias"):
        registry.delete("fraud", 1)
    registry.delete("fraud", 2)
    assert [mv.version for mv in registry.versions("fraud")] == [1]
    assert registry.register("fraud", fitted(0.7)).version == 3  # numbers are never reused


@pytest.mark.parametrize("module", ["models", "gates", "artifacts"])
def test_doctests(module):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(f"mlflowdsl.runtime.registry.{module}")).failed == 0
