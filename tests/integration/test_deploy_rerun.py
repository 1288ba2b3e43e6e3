"""An unchanged re-run of a deploying pipeline changes nothing: the registry keeps one version
and the deployment keeps serving (same supervisor, no failed health probe during the re-run)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from mlflowdsl.runtime.registry import deployments, open_registry
from mlflowdsl.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MLW = str(Path(sys.executable).parent / "mlw")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKFLOW = """workflow deploy_twice {
  task prep: data_preprocessing { source = "sklearn:wine" }
  task train: model_training { data = prep.output  algorithm = "knn" }
  task deploy: model_deployment {
    model = train.model
    name  = "wine_live"
    serve = true
  }
}
"""


@pytest.fixture()
def home(tmp_path):
    home = tmp_path / "home"
    yield home
    settings = Settings(home=str(home))
    registry = open_registry(settings)
    for record in registry.store.deployments():
        deployments.stop(settings, record["name"])
    registry.close()


def _probe(url: str, stop: threading.Event, results: list[bool]) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                results.append(answer.status == 200)
        except Exception:  # noqa: BLE001 - a refused or failed probe is what we count
            results.append(False)
        time.sleep(0.05)


def test_an_unchanged_rerun_keeps_one_version_and_the_running_server(tmp_path, home, dask_cluster):
    (tmp_path / "wf.mlw").write_text(WORKFLOW)
    env = dict(os.environ, MLW_HOME=str(home), MLW_DASK_SCHEDULER=dask_cluster.address,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))

    def run():
        return subprocess.run([MLW, "run", "wf.mlw"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)

    first = run()
    assert first.returncode == 0, first.stderr
    settings = Settings(home=str(home))
    before = deployments.status(settings, "wine_live")
    assert before["state"] == "running"
    stop, probes = threading.Event(), []
    prober = threading.Thread(target=_probe, args=(before["endpoint"] + "/health", stop, probes), daemon=True)
    prober.start()
    try:
        again = run()
    finally:
        stop.set()
        prober.join(10)
    assert again.returncode == 0, again.stderr
    after = deployments.status(settings, "wine_live")
    registry = open_registry(settings)
    versions = [mv.version for mv in registry.versions("wine_live")]
    registry.close()
    assert versions == [1]
    assert (after["model"], after["pid"], after["port"]) == ("wine_live/1", before["pid"], before["port"])
    assert probes and all(probes), f"{probes.count(False)} of {len(probes)} health probes failed"
