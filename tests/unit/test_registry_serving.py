"""Serving pieces without processes: the request parser, the scaling decision, the load meter,
the deployment config checks."""

from __future__ import annotations

import doctest
import json

import pytest

from mlflowdsl.errors import MlwError
from mlflowdsl.runtime.registry.deployments import autoscale_of, batching_of, scaling_of
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


def _record_in_a_process(directory, busy: float, requests: int) -> None:
    """Counters written by another process, as a gunicorn worker writes them."""
    import os
    import subprocess
    import sys

    code = ("from mlflowdsl.runtime.registry.serving.metrics import ServingMetrics\n"
            "m = ServingMetrics()\n"
            f"m.scored('m/1', 3, {busy})\n"
            f"for _ in range({requests}): m.answered('m/1', 'predict', 200, 0.001)\n"
            "m.answered('m/1', 'predict', 422, 0.001)\n")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_load_meter_reads_the_replicas_multiprocess_counters(tmp_path):
    meter = LoadMeter(str(tmp_path))
    assert meter.sample(2, 1.0) == 0.0  # first sample: no previous reading
    _record_in_a_process(tmp_path, 0.5, 4)
    _record_in_a_process(tmp_path, 0.3, 2)
    assert meter.sample(2, 1.0) == pytest.approx((0.5 + 0.3) / 2)
    assert meter.sample(2, 1.0) == 0.0  # nothing new since
    totals = meter.totals()
    assert totals["requests"] == 8 and totals["errors"] == 2 and totals["rows"] == 6
    assert LoadMeter(str(tmp_path / "absent")).totals()["requests"] == 0


def test_batching_settings_are_checked():
    assert batching_of({}) == {"enabled": True, "max_batch_rows": 256, "max_wait_ms": 0.0}
    assert batching_of({"batching": False})["enabled"] is False
    assert batching_of({"batching": {"max_batch_rows": "64", "max_wait_ms": 2}})["max_batch_rows"] == 64
    with pytest.raises(MlwError, match="bad batching setting: max_batch_rows = 0"):
        batching_of({"batching": {"max_batch_rows": 0}})
    with pytest.raises(MlwError, match="bad batching setting\\(s\\): size"):
        batching_of({"batching": {"size": 3}})
    with pytest.raises(MlwError, match="enabled must be true or false"):
        batching_of({"batching": {"enabled": "yes"}})


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
