"""Tuning benchmark (issue 6): TPE vs random search, parallel = 2 vs 1, orchestration overhead.

    .venv/bin/python bench/tuning.py [--trials 40] [--seeds 5] [--parallel-trials 8]

Gradient boosting (40 trees) on the bundled breast-cancer data, objective: 3-fold
cross-validated accuracy of the training split. Prints a Markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKFLOW = """mlw 1
workflow bench_tuning {{
  defaults {{ cache {{ strategy = {cache} }} }}
  task prepare: data_preprocessing {{ source = "sklearn:breast_cancer"  scale = "standard"  seed = 0 }}
  task train: model_training {{
    data = prepare.output  algorithm = "gradient_boosting"
    hyperparameters = {{ n_estimators = {trees} }}  cv = 3  seed = 0
  }}
  tune train {{
    search {{ learning_rate = float(0.01, 0.5, log = true)  max_depth = int(1, 5)  subsample = float(0.5, 1.0) }}
    objective = maximize(cv_accuracy)
    trials = {trials}  parallel = {parallel}  sampler = {sampler}  seed = {seed}
  }}
}}
"""


def data():
    from stdlib_tasks.data_preprocessing import DataPreprocessing
    from mlflowdsl.tasks import TaskContext

    cls = DataPreprocessing
    out = cls().run(cls.Params(source="sklearn:breast_cancer", scale="standard", seed=0), {}, TaskContext())
    return out.outputs[cls.default_output]


def bare_study(dataset, sampler: str, seed: int, trials: int, trees: int = 40) -> tuple[list[float], float]:
    """The same training in a plain ``study.optimize`` loop; returns best-so-far per trial, seconds."""
    import optuna
    from stdlib_tasks.model_training import train

    from mlflowdsl.tasks.search import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed, []))

    def objective(trial):
        hp = {"n_estimators": trees, "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
              "max_depth": trial.suggest_int("max_depth", 1, 5), "subsample": trial.suggest_float("subsample", 0.5, 1.0)}
        return train(dataset, "gradient_boosting", hp, "auto", 0, None, cv=3)[1]["cv_accuracy"]

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    best, curve = float("-inf"), []
    for t in study.trials:
        best = max(best, t.value)
        curve.append(best)
    return curve, time.perf_counter() - started


def run_tuned(home: str, client, *, trials: int, parallel: int, sampler: str = "tpe", seed: int = 0,
              cache: str = "none", trees: int = 40) -> tuple[float, dict]:
    from mlflowdsl.compiler.api import compile_text
    from mlflowdsl.runtime.api import run_plan
    from mlflowdsl.settings import Settings

    text = WORKFLOW.format(trials=trials, parallel=parallel, sampler=sampler, seed=seed, cache=cache, trees=trees)
    plan = compile_text(text, os.path.join(home, "bench.mlw")).raise_for_errors()
    started = time.perf_counter()
    execution = run_plan(plan, Settings(home=home), client=client, base_dir=home)
    assert execution.status == "succeeded", execution.error
    return time.perf_counter() - started, execution.tasks["train"].study


def trial_gaps(study: dict) -> list[float]:
    """Seconds between one trial's end on its worker and the next one's start (parallel = 1):
    the client's fetch-result / tell / ask / submit round, i.e. the orchestration per trial."""
    rows = sorted((t for t in study["trials"] if t["started"] and t["ended"]), key=lambda t: t["started"])
    return [b["started"] - a["ended"] for a, b in zip(rows, rows[1:])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--parallel-trials", type=int, default=8)
    ap.add_argument("--parallel-trees", type=int, default=40, help="trees per trial in the parallel comparison")
    ap.add_argument("--skip-samplers", action="store_true", help="only the parallel/overhead part")
    args = ap.parse_args()
    dataset = data()

    rows, reach = [], []
    for seed in range(0 if args.skip_samplers else args.seeds):
        tpe, _ = bare_study(dataset, "tpe", seed, args.trials)
        rnd, _ = bare_study(dataset, "random", seed, args.trials)
        rows.append((tpe[-1], rnd[-1]))
        reach.append(next((i + 1 for i, v in enumerate(tpe) if v >= rnd[-1]), None))
    bare_curve, bare_s = bare_study(dataset, "tpe", 0, args.parallel_trials, trees=args.parallel_trees)

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as home, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        run_tuned(home, client, trials=2, parallel=2, seed=99)  # warm the workers' imports
        # best of three, alternating: the machine is shared, and a busy moment must not decide
        ones, twos, gaps = [], [], []
        for _ in range(3):
            wall, study1 = run_tuned(home, client, trials=args.parallel_trials, parallel=1, trees=args.parallel_trees)
            ones.append(wall)
            gaps.extend(trial_gaps(study1))
            twos.append(run_tuned(home, client, trials=args.parallel_trials, parallel=2, trees=args.parallel_trees)[0])
        one, two = min(ones), min(twos)
    per_trial_runtime = one / args.parallel_trials  # includes `prepare` and the run's start-up
    per_trial_bare = bare_s / args.parallel_trials

    print(f"## Tuning\n\nMachine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
          f"Gradient boosting (40 trees) on sklearn:breast_cancer, objective 3-fold cv_accuracy.\n")
    if rows:
        print(f"TPE vs random, {args.trials} trials, {args.seeds} seeds (in-process studies, same training):\n")
        print("| seed | TPE best | random best | TPE trials to reach random's final best |\n|---|---|---|---|")
        for seed, ((t, r), n) in enumerate(zip(rows, reach)):
            print(f"| {seed} | {t:.4f} | {r:.4f} | {n if n else 'not reached'} |")
        print(f"\nMean best: TPE {statistics.mean(t for t, _ in rows):.4f}, random {statistics.mean(r for _, r in rows):.4f}.\n")
    print(f"`tune` block on a 2-worker LocalCluster (1 thread each), {args.parallel_trials} trials of "
          f"{args.parallel_trees} trees, cache off:\n")
    print(f"(best of 3; all runs: parallel 1 {', '.join(f'{x:.2f}' for x in ones)} s, parallel 2 "
          f"{', '.join(f'{x:.2f}' for x in twos)} s)\n")
    print(f"| parallel | wall s | speed-up |\n|---|---|---|\n| 1 | {one:.2f} | 1.00x |\n| 2 | {two:.2f} | {one / two:.2f}x |\n")
    print(f"Per trial: bare `study.optimize` {per_trial_bare * 1000:.0f} ms, runtime (parallel = 1, incl. "
          f"prepare and run start-up) {per_trial_runtime * 1000:.0f} ms; overhead "
          f"{(per_trial_runtime - per_trial_bare) * 1000:.0f} ms per trial (both measured under the machine's "
          f"load at that moment). Gap between consecutive trials at parallel = 1 (end of one on its worker -> "
          f"start of the next): median {statistics.median(gaps) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms "
          f"over {len(gaps)} gaps.")


if __name__ == "__main__":
    main()
