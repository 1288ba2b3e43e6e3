"""Repeated `mlw run`s with and without a warm local cluster (`mlw cluster up`), alternated in
one run: two homes, one with a warm cluster, the other where each run starts its own embedded
cluster. The workflow is a 3-task chain with caching off, so every run computes its tasks.

    python bench/warm_cluster.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLW = str(Path(sys.executable).parent / "mlw")

WORKFLOW = """\
workflow warm_bench {
  defaults { cache { strategy = none } }
  task a: custom { uses = "tests.integration.tasks_for_tests:value"  x = 1 }
  task b: custom after a { uses = "tests.integration.tasks_for_tests:value"  x = 2 }
  task c: custom after b { uses = "tests.integration.tasks_for_tests:value"  x = 3 }
}
"""


def _mlw(args: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([MLW, *args], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"mlw {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wf = os.path.join(tmp, "wf.mlw")
        Path(wf).write_text(WORKFLOW)
        base = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
        base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        cold = dict(base, MLW_HOME=os.path.join(tmp, "cold"))
        warm = dict(base, MLW_HOME=os.path.join(tmp, "warm"))
        up = _mlw(["cluster", "up"], warm, tmp)
        print(f"mlw cluster up: {up:.2f} s (once)")
        try:
            cold_s, warm_s = [], []
            for _ in range(args.rounds):
                cold_s.append(_mlw(["run", wf], cold, tmp))
                warm_s.append(_mlw(["run", wf], warm, tmp))
        finally:
            _mlw(["cluster", "down"], warm, tmp)
    c, w = statistics.median(cold_s), statistics.median(warm_s)
    print(f"{args.rounds} rounds of `mlw run` (3 tasks, no cache), median (min-max):")
    print(f"  own embedded cluster per run  {c:.3f} s ({min(cold_s):.3f}-{max(cold_s):.3f})")
    print(f"  warm cluster (mlw cluster up) {w:.3f} s ({min(warm_s):.3f}-{max(warm_s):.3f})")
    print(f"  ratio warm/own: {w / c:.2f}x; saved per run: {c - w:.2f} s; "
          f"`up` pays for itself after {up / max(c - w, 1e-9):.1f} runs")


if __name__ == "__main__":
    main()
