"""The assumptions ``runtime/tuning/study.py`` makes about Optuna's private API, checked against
the installed Optuna so that an upgrade that breaks them fails here, by name, rather than as a
study that loses its trials' attributes."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from mlflowdsl.runtime.tuning import study as study_module

UPDATE = "update mlflowdsl/runtime/tuning/study.py and the optuna bound in pyproject.toml"


@pytest.fixture
def study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def test_a_trial_has_a_storage_id(study):
    trial = study.ask()
    assert isinstance(getattr(trial, "_trial_id", None), int), f"optuna Trial._trial_id is gone: {UPDATE}"
    frozen = study.get_trials(deepcopy=False)[0]
    assert isinstance(getattr(frozen, "_trial_id", None), int), f"optuna FrozenTrial._trial_id is gone: {UPDATE}"
    assert study_module.trial_id(trial) == frozen._trial_id


def test_the_study_storage_writes_attributes_and_states_by_id(study):
    storage = getattr(study, "_storage", None)
    assert storage is not None, f"optuna Study._storage is gone: {UPDATE}"
    for name in ("set_trial_user_attr", "set_trial_state_values"):
        assert callable(getattr(storage, name, None)), f"optuna storage.{name} is gone: {UPDATE}"
    trial = study.ask()
    study_module.set_attrs(study, trial, {"metrics": {"accuracy": 0.9}, "worker": "w1", "error": None})
    assert study.trials[0].user_attrs == {"metrics": {"accuracy": 0.9}, "worker": "w1"}


def test_a_trial_left_running_is_failed_and_enqueued_once(study):
    trial = study.ask({"x": optuna.distributions.IntDistribution(1, 3)})
    study_module.recover_stale(study)
    first = study.trials[0]
    assert first.state == TrialState.FAIL and first.user_attrs["stale"] is True
    retry = study.trials[1]
    assert retry.state == TrialState.WAITING and retry.params == {} and retry.system_attrs["fixed_params"] == trial.params
