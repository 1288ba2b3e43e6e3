"""Long fuzz run of the whole compiler: mutations of tests/unit/fuzz_corpus/ (the suite's fuzz
test runs the same generator for a few hundred inputs).

Every input must end in a plan or in diagnostics with a place (an ``MlwError`` counts too);
anything else is a *traceback*, printed with the input that caused it. Reported: inputs,
tracebacks, the slowest input and the process's peak RSS (the compiler runs in this one
process, so the peak bounds every single input's memory). Side by side, the same run times the
unmutated seeds, the anchor for the per-input figures.

    .venv/bin/python bench/fuzz_compiler.py                  # 20,000 inputs, seed 0
    .venv/bin/python bench/fuzz_compiler.py --inputs 2000 --seed 7
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))

from fuzz_inputs import check, mutate, seeds  # noqa: E402 - the path is set just above


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    corpus = seeds()
    anchor = []
    for name, text in corpus:
        check(text, name)  # the first compile builds the parser and imports the task types
        problem, took = check(text, name)
        assert problem is None, (name, problem)
        anchor.append(took)
    times: list[float] = []
    failures: list[tuple[str, str, str]] = []
    slowest = (0.0, "", "")
    started = time.perf_counter()
    for i in range(args.inputs):
        name, text = corpus[i % len(corpus)]
        mutated = mutate(text, rng)
        problem, took = check(mutated, name)
        times.append(took)
        if took > slowest[0]:
            slowest = (took, name, mutated)
        if problem is not None:
            failures.append((name, problem, mutated))
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.sort()
    print(f"inputs {args.inputs} (seed {args.seed}, {len(corpus)} seeds), wall {wall:.1f} s")
    print(f"tracebacks {len(failures)}")
    print(f"per input: median {statistics.median(times) * 1000:.1f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.1f} ms,"
          f" max {slowest[0] * 1000:.0f} ms ({slowest[1]})")
    print(f"unmutated seeds (anchor): max {max(anchor) * 1000:.1f} ms; slowest input / slowest seed = "
          f"{slowest[0] / max(anchor):.1f}x")
    print(f"peak RSS of the process: {peak:.0f} MiB")
    for name, problem, text in failures[:20]:
        print(f"--- {name}: {problem}\n{text[:500]!r}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
