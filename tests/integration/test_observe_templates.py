"""Every `mlw new` template runs to success on the test cluster, as its README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflowdsl.templates import TEMPLATES

pytestmark = pytest.mark.integration
MLW = str(Path(sys.executable).parent / "mlw")


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_template_runs(template, tmp_path, dask_cluster):
    env = dict(os.environ, MLW_HOME=str(tmp_path / "home"), MLW_DASK_SCHEDULER=dask_cluster.address)

    def mlw(*args, cwd=tmp_path):
        return subprocess.run([MLW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)

    created = mlw("new", "demo", "--template", template)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "demo"
    done = mlw("run", "demo.mlw", "--params-file", "params.yaml", "--json", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded"
    assert all(t["status"] == "succeeded" for t in summary["tasks"].values()), summary["tasks"]
    assert any(t["metrics"] for t in summary["tasks"].values())
    if template == "batch-scoring":
        scores = (project / "out" / "scores.csv").read_text().splitlines()
        assert len(scores) == 179  # a header and the wine data set's 178 rows
