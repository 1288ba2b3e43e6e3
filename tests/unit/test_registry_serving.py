"""Serving pieces without processes: the request parser, the scaling decision, the load meter,
the deployment config checks."""

from __future__ import annotations

import doctest
import json

import pytest

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry.deployments import autoscale_of, scaling_of
from mlflowdsl.runtime.registry.serving import app, autoscaler, bodies
from mlflowdsl.runtime.registry.serving.autoscaler import LoadMeter, ScalingPolicy


@pytest.mark.parametrize("module", [app, autoscaler, bodies])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_policy_stays_within_bounds_and_needs_sustained_load():
    policy = ScalingPolicy(min_replicas=2, max_replicas=4, up_samples=3, down_samples=3)
    assert policy.decide(1, []) == 2  # below the minimum: raise at once
    assert policy.decide(5, []) == 4
    assert policy.decide(2, [0.99, 0.99]) == 2  # not yet sustained
    assert policy.decide(2, [0.1, 0.99, 0.99, 0.99]) == 3  # only the last window counts
    assert policy.decide(4, [0.99] * 3) == 4
    assert policy.decide(3, [0.5] * 10) == 3  # between low and high: keep
    assert policy.decide(2, [0.0] * 10) == 2


def test_load_meter_measures_busy_fraction_of_live_workers(tmp_path):
    meter = LoadMeter(str(tmp_path))
    for pid, busy in ((11, 1.0), (12, 3.0), (99, 7.0)):
        (tmp_path / f"{pid}.json").write_text(json.dumps({"pid": pid, "busy_s": busy, "requests": 5}))
    assert meter.sample({11, 12}, 1.0) == 0.0  # first sample: no previous reading
    assert not (tmp_path / "99.json").exists()  # a dead worker's file is dropped
    (tmp_path / "11.json").write_text(json.dumps({"busy_s": 1.8, "requests": 9}))
    (tmp_path / "12.json").write_text(json.dumps({"busy_s": 3.6, "requests": 9}))
    assert meter.sample({11, 12}, 1.0) == pytest.approx((0.8 + 0.6) / 2)
    assert meter.totals({11, 12})["requests"] == 18


def test_scaling_config_is_checked():
    assert scaling_of({"scaling_config": {"min_replicas": 2, "max_replicas": 10}}) == (2, 10)
    assert scaling_of({}) == (1, 1)
    with pytest.raises(MlwError, match="min_replicas=3, max_replicas=2"):
        scaling_of({"scaling_config": {"min_replicas": 3, "max_replicas": 2}})
    with pytest.raises(MlwError, match="min_replicas=0"):
        scaling_of({"min_replicas": 0})
    assert autoscale_of({"scaling_config": {"scale_up_samples": "2"}}) == {"scale_up_samples": 2}
    with pytest.raises(MlwError, match="scale_interval_s must be a positive number"):
        autoscale_of({"scaling_config": {"scale_interval_s": "soon"}})


def test_predictions_become_plain_json():
    import numpy as np

    assert app.to_json_value(np.array([1, 0])) == [1, 0]
    assert json.dumps(app.to_json_value([np.int64(1), np.float32(0.5)])) == "[1, 0.5]"
