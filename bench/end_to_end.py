"""A whole pipeline against the plain scikit-learn script doing the same work, side by side.

Generates a CSV (``--rows`` x 22 columns: 18 numeric with missing values, 3 categorical, a
binary target), then alternates, per round:
- the plain script: read the CSV (pandas), split 80/20 stratified, impute (median) / one-hot
  encode / standard-scale fitted on the train split, logistic regression, accuracy/ROC AUC;
- `mlw run` of the equivalent workflow (data_preprocessing -> model_training ->
  model_evaluation, caching off, so every round computes), on its own embedded cluster;
- the start-up line: `mlw run` of a one-task no-op workflow (CLI start, compile, cluster start
  and stop), reported apart; ``mlw - start-up`` is what the pipeline itself costs.
Targets (issue 19): mlw <= 1.3x the script at 100,000 rows, <= 1.2x at 1,000,000.

With ``--warm`` a fourth column: the same `mlw run` on a warm cluster (`mlw cluster up`, in a
home of its own), i.e. without the cluster's start-up.

    python bench/end_to_end.py [--rows 100000] [--rounds 3] [--warm]
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

PLAIN = """\
import sys
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

df = pd.read_csv(sys.argv[1])
y = df.pop("target")
X_train, X_test, y_train, y_test = train_test_split(df, y, test_size=0.2, random_state=7, stratify=y)
numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
categorical = [c for c in df.columns if c not in numeric]
transform = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
     categorical)])
Xt_train = np.asarray(transform.fit_transform(X_train), dtype=float)
Xt_test = np.asarray(transform.transform(X_test), dtype=float)
model = LogisticRegression(random_state=7).fit(Xt_train, y_train)
proba = model.predict_proba(Xt_test)[:, 1]
print("accuracy", accuracy_score(y_test, model.predict(Xt_test)), "roc_auc", roc_auc_score(y_test, proba))
"""

WORKFLOW = """\
workflow end_to_end {
  defaults { cache { strategy = none } }
  task prepare: data_preprocessing {
    source = "data.csv"  target = "target"  test_size = 0.2  seed = 7
    impute = "median"  scale = "standard"  encode = "onehot"  stratify = true
  }
  task train: model_training { data = prepare.output  algorithm = "logistic_regression"  seed = 7 }
  task evaluate: model_evaluation { model = train.model  data = prepare.output }
}
"""

NOOP = """\
workflow startup {
  defaults { cache { strategy = none } }
  task a: custom { uses = "tests.integration.tasks_for_tests:noop" }
}
"""


def generate(path: str, rows: int, seed: int = 7) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(size=rows) for i in range(18)}
    for i in range(18):
        data[f"x{i}"][rng.random(rows) < 0.05] = np.nan
    for i, levels in enumerate((["a", "b", "c"], ["u", "v", "w", "x", "y"], ["p", "q"])):
        data[f"c{i}"] = rng.choice(levels, size=rows)
    logit = np.nan_to_num(data["x0"]) - 0.5 * np.nan_to_num(data["x1"]) + (data["c0"] == "a")
    data["target"] = (logit + rng.normal(size=rows) > 0.3).astype(int)
    pd.DataFrame(data).to_csv(path, index=False)


def _timed(argv: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", action="store_true", help="also time mlw run on a warm cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(os.path.join(tmp, "data.csv"), args.rows)
        Path(tmp, "plain.py").write_text(PLAIN)
        Path(tmp, "wf.mlw").write_text(WORKFLOW)
        Path(tmp, "noop.mlw").write_text(NOOP)
        env = {k: v for k, v in os.environ.items() if k not in ("MLW_DASK_SCHEDULER", "MLW_REDIS_URL")}
        env.update(MLW_HOME=os.path.join(tmp, "home"),
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
        warm = dict(env, MLW_HOME=os.path.join(tmp, "warm")) if args.warm else None
        if warm is not None:
            _timed([MLW, "cluster", "up"], warm, tmp)
        plain_s, mlw_s, start_s, warm_s = [], [], [], []
        try:
            for _ in range(args.rounds):
                plain_s.append(_timed([sys.executable, "plain.py", "data.csv"], env, tmp))
                mlw_s.append(_timed([MLW, "run", "wf.mlw"], env, tmp))
                start_s.append(_timed([MLW, "run", "noop.mlw"], env, tmp))
                if warm is not None:
                    warm_s.append(_timed([MLW, "run", "wf.mlw"], warm, tmp))
        finally:
            if warm is not None:
                _timed([MLW, "cluster", "down"], warm, tmp)
    p, m, s = (statistics.median(x) for x in (plain_s, mlw_s, start_s))
    target = 1.3 if args.rows <= 100_000 else 1.2
    print(f"{args.rows:,} rows x 22 columns, {args.rounds} rounds, median (min-max):")
    print(f"  plain script          {p:.2f} s ({min(plain_s):.2f}-{max(plain_s):.2f})")
    print(f"  mlw run               {m:.2f} s ({min(mlw_s):.2f}-{max(mlw_s):.2f})")
    print(f"  start-up (1 no-op)    {s:.2f} s ({min(start_s):.2f}-{max(start_s):.2f})")
    print(f"  ratio mlw/plain: {m / p:.2f}x (target <= {target}x: {'met' if m / p <= target else 'NOT met'}); "
          f"without the start-up line: {(m - s) / p:.2f}x")
    if warm_s:
        w = statistics.median(warm_s)
        print(f"  mlw run, warm cluster {w:.2f} s ({min(warm_s):.2f}-{max(warm_s):.2f}); ratio to plain {w / p:.2f}x")


if __name__ == "__main__":
    main()
