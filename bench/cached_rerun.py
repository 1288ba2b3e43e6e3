"""A fully cached rerun: `mlw run FILE` (every task a cache hit, so no cluster starts) against
`mlw plan FILE` on the same file, alternated in one run; both are the CLI as a user types it.

A 3-task chain of custom steps is run once (computing the cache), then each round times one
`mlw plan` and one `mlw run` in turn. Target (issue 19): run <= 1.2x plan.

    python bench/cached_rerun.py [--rounds 7] [--also /path/to/other/checkout]

``--also`` adds a third column: the same cached `mlw run` with another checkout of mlflowdsl on
``PYTHONPATH`` (e.g. one from before this change, which started the cluster anyway).
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
workflow cached_rerun {
  task a: custom { uses = "tests.integration.tasks_for_tests:value"  x = 1 }
  task b: custom after a { uses = "tests.integration.tasks_for_tests:value"  x = 2 }
  task c: custom after b { uses = "tests.integration.tasks_for_tests:value"  x = 3 }
}
"""


def _timed(argv: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--also", metavar="CHECKOUT", help="also time `mlw run` with this checkout's mlflowdsl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wf = os.path.join(tmp, "wf.mlw")
        Path(wf).write_text(WORKFLOW)
        env = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
        env.update(MLW_HOME=os.path.join(tmp, "home"),
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
        first = _timed([MLW, "run", wf], env, tmp)
        print(f"first run (computes the cache, starts the embedded cluster): {first:.2f} s")
        other = dict(env, PYTHONPATH=os.pathsep.join(p for p in (args.also, str(REPO)) if p)) if args.also else None
        plan_s, run_s, other_s = [], [], []
        for _ in range(args.rounds):
            plan_s.append(_timed([MLW, "plan", wf], env, tmp))
            run_s.append(_timed([MLW, "run", wf], env, tmp))
            if other is not None:
                other_s.append(_timed([MLW, "run", wf], other, tmp))
    p, r = statistics.median(plan_s), statistics.median(run_s)
    print(f"{args.rounds} rounds, median (min-max):")
    print(f"  mlw plan FILE          {p:.3f} s ({min(plan_s):.3f}-{max(plan_s):.3f})")
    print(f"  mlw run FILE (cached)  {r:.3f} s ({min(run_s):.3f}-{max(run_s):.3f})")
    print(f"  ratio run/plan: {r / p:.2f}x (target <= 1.2x: {'met' if r / p <= 1.2 else 'NOT met'})")
    print(f"  ratio first run/cached run: {first / r:.2f}x")
    if other_s:
        o = statistics.median(other_s)
        print(f"  mlw run FILE (cached), {args.also}: {o:.3f} s ({min(other_s):.3f}-{max(other_s):.3f}); "
              f"ratio to plan {o / p:.2f}x, to this checkout's run {o / r:.2f}x")


if __name__ == "__main__":
    main()
