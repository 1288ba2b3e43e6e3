"""A promoter process for test_mlflow_registry: gated promotions of ``champion`` through the
MLflow registry store, started together with another one (a file barrier)."""

import os
import sys
import time

from mlflowdsl.runtime.registry import Gate, GateRefused, open_registry
from mlflowdsl.settings import Settings

if __name__ == "__main__":
    home, uri, name, barrier, *versions = sys.argv[1:]
    registry = open_registry(Settings(home=home, registry="mlflow", mlflow_tracking_uri=uri))
    registry.aliases(name)  # connected and imported before the barrier
    open(os.path.join(barrier, f"ready-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for v in versions:
        try:
            registry.promote(f"{name}/{v}", "champion", gate=Gate(against="champion", metrics=("accuracy",)),
                             by=f"p{os.getpid()}")
        except GateRefused:
            pass
    registry.close()
