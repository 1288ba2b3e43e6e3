"""`mlw plan` on a pipeline reading a 400 MB CSV, first and second time, side by side with
the same plan on a 1 KB file (runtime/datafp.py: the second plan finds the file's digest in
``<home>/fingerprints.db`` and costs a ``stat`` instead of a sha256 of 400 MB).

Each `mlw plan` is a fresh process (as a user runs it); the "keys only" rows time
``planning.task_keys`` in this process, without interpreter start and compile, so the hash
itself is visible. Target: second big plan <= 1.2x the small plan.
Run: ``.venv/bin/python bench/storage.py [--mb 400] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflowdsl.compiler.api import compile_file
from mlflowdsl.runtime.datafp import Fingerprinter
from mlflowdsl.runtime.planning import task_keys

REPO = Path(__file__).resolve().parent.parent
MLW = str(Path(sys.executable).parent / "mlw")
WORKFLOW = """\
workflow big {{
  defaults {{ cache {{ strategy = disk }} }}
  task prepare: data_preprocessing {{ source = "{source}"  target = "y" }}
  task train: model_training {{ data = prepare.output  algorithm = "logistic_regression" }}
}}
"""
ROW = b"0.123456,1.234567,2.345678,3.456789,4.567890,5.678901,1\n"


def write_csv(path: Path, size: int) -> None:
    block = b"a,b,c,d,e,f,y\n" + ROW * ((1 << 20) // len(ROW))
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            chunk = block if written == 0 else ROW * ((1 << 20) // len(ROW))
            fh.write(chunk)
            written += len(chunk)
    past = time.time() - 120  # settled: datafp remembers only files not modified in the last 2 s
    os.utime(path, (past, past))


def mlw_plan(workdir: Path, name: str) -> float:
    env = dict(os.environ, MLW_HOME=str(workdir / "home"),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    start = time.perf_counter()
    done = subprocess.run([MLW, "plan", name, "--format", "json"], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"mlw plan {name} failed: {done.stdout}{done.stderr}")
    return elapsed


def keys_only(workdir: Path, name: str) -> float:
    plan = compile_file(str(workdir / name)).plan
    fingerprint = Fingerprinter(workdir / "home")
    start = time.perf_counter()
    task_keys(plan, str(workdir), fingerprint)
    elapsed = time.perf_counter() - start
    fingerprint.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mlw-bench-storage-"))
    try:
        (workdir / "home").mkdir()
        write_csv(workdir / "big.csv", args.mb << 20)
        write_csv(workdir / "small.csv", 1024)
        (workdir / "big.mlw").write_text(WORKFLOW.format(source="big.csv"))
        (workdir / "small.mlw").write_text(WORKFLOW.format(source="small.csv"))
        mlw_plan(workdir, "small.mlw")  # warm the OS file cache for the interpreter and packages
        small_first = mlw_plan(workdir, "small.mlw")
        big_first = mlw_plan(workdir, "big.mlw")
        small, big = [], []
        for _ in range(args.repeat):  # interleaved, so load changes hit both alike
            small.append(mlw_plan(workdir, "small.mlw"))
            big.append(mlw_plan(workdir, "big.mlw"))
        (workdir / "home" / "fingerprints.db").unlink()
        keys_big_first = keys_only(workdir, "big.mlw")
        keys_big_second = statistics.median(keys_only(workdir, "big.mlw") for _ in range(args.repeat))
        keys_small = statistics.median(keys_only(workdir, "small.mlw") for _ in range(args.repeat))
        small_med, big_med = statistics.median(small), statistics.median(big)
        print(f"`mlw plan`, {args.mb} MB CSV vs 1 KB CSV ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load {os.getloadavg()[0]:.1f}; median of {args.repeat} interleaved runs)\n")
        print(f"| measurement | 1 KB file (s) | {args.mb} MB file (s) | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| `mlw plan`, first (memo empty for the big file) | {small_first:.3f} | {big_first:.3f} | "
              f"{big_first / small_first:.2f}x |")
        print(f"| `mlw plan`, second (digest from the memo) | {small_med:.3f} | {big_med:.3f} | {big_med / small_med:.2f}x |")
        print(f"| keys only, first (sha256 of the file) | {keys_small:.4f} | {keys_big_first:.4f} | "
              f"{keys_big_first / keys_small:.0f}x |")
        print(f"| keys only, second (stat + memo lookup) | {keys_small:.4f} | {keys_big_second:.4f} | "
              f"{keys_big_second / keys_small:.2f}x |")
        ratio = big_med / small_med
        print(f"\nTarget second big plan <= 1.2x the small plan: {'met' if ratio <= 1.2 else 'NOT met'} ({ratio:.2f}x).")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
