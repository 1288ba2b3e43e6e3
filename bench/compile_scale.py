"""Compile-time benchmark: `mlw lint` / `mlw compile` against a lower bound and Snakemake.

For each shape and size, one generated workflow is timed end to end (a fresh process each
time, wall clock, best of ``--repeat``), side by side in the same run with:

(a) the lower bound: a bare Lark LALR parse of the same text with the same grammar file
    (tree building, no transformer, no positions), plus building the same dependency graph in
    networkx with cycle detection and a topological sort — also a fresh process;
(b) ``snakemake -n`` on an equivalent Snakefile (one wildcard rule, the same dependency
    graph, run from its own virtualenv ``bench/.venv-snakemake``, created on first use).

Shapes: ``chain`` (each task uses the previous one's output), ``fan`` (one source, n-2
parallel tasks, one sink after all of them), ``dag`` (layered random DAG, fixed seed: each
task uses one task of the previous layer and runs after up to two earlier ones), all written
out task by task; and ``foreach`` (the fan shape produced by one ``foreach`` over a list
parameter, collected with ``t[*].output``). A 100,000-task ``foreach`` expansion is timed
too (``--foreach-big``).

    .venv/bin/python bench/compile_scale.py                 # 1k, 10k, 50k; best of 3
    .venv/bin/python bench/compile_scale.py --quick         # 1k and 10k, best of 1
    .venv/bin/python bench/compile_scale.py --record        # also write bench/RESULTS.md
    .venv/bin/python bench/compile_scale.py --profile 10000 # where a 10k compile spends time
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
GRAMMAR = ROOT / "mlflowdsl" / "grammar" / "mlw.lark"
PYTHON = Path(sys.executable)
MLW = PYTHON.parent / "mlw"
SNAKE_VENV = BENCH / ".venv-snakemake"
SNAKEMAKE = SNAKE_VENV / "bin" / "snakemake"
USES = '"compile_tasks:step"'  # bench/compile_tasks.py, put on PYTHONPATH for the mlw runs

# ----------------------------------------------------------------------------- generators


def generate(shape: str, n: int, seed: int = 42) -> tuple[str, list[tuple[str, str]]]:
    """The `.mlw` text of one workflow and its dependency edges (upstream, downstream)."""
    return {"chain": _chain, "fan": _fan, "dag": _dag, "foreach": _foreach}[shape](n, seed)


def _task(i: str, data: str | None = None, after: list[str] | None = None) -> str:
    head = f"task {i}: custom" + (f" after {', '.join(after)}" if after else "")
    body = f"uses = {USES}" + (f"  data = {data}.output" if data else "")
    return f"  {head} {{\n    {body}\n  }}\n"


def _workflow(name: str, tasks: list[str], params: str = "") -> str:
    return f"mlw 1\n\nworkflow bench_{name} {{\n{params}" + "".join(tasks) + "}\n"


def _chain(n: int, seed: int):
    tasks = [_task("t0")] + [_task(f"t{i}", data=f"t{i - 1}") for i in range(1, n)]
    return _workflow("chain", tasks), [(f"t{i - 1}", f"t{i}") for i in range(1, n)]


def _fan(n: int, seed: int):
    mids = [f"t{i}" for i in range(1, n - 1)]
    tasks = [_task("src")] + [_task(m, data="src") for m in mids] + [_task("sink", after=mids)]
    edges = [("src", m) for m in mids] + [(m, "sink") for m in mids]
    return _workflow("fan", tasks), edges


def _dag(n: int, seed: int):
    rng = random.Random(seed)
    width = max(1, round(n**0.5))
    layers: list[list[str]] = []
    tasks: list[str] = []
    edges: list[tuple[str, str]] = []
    done: list[str] = []
    for i in range(n):
        if i % width == 0:
            layers.append([])
        name = f"t{i}"
        if len(layers) == 1:
            tasks.append(_task(name))
        else:
            data = rng.choice(layers[-2])
            earlier = done[: len(done) - len(layers[-1])]  # tasks of finished layers
            after = sorted(set(rng.sample(earlier, k=min(len(earlier), rng.randint(0, 2)))) - {data})
            tasks.append(_task(name, data=data, after=after))
            edges += [(data, name)] + [(a, name) for a in after]
        layers[-1].append(name)
        done.append(name)
    return _workflow("dag", tasks), edges


def _foreach(n: int, seed: int):
    k = n - 2
    items = ", ".join(str(i) for i in range(k))
    params = f"  params {{\n    items: list[int] = [{items}]\n  }}\n\n"
    tasks = [
        _task("prep"),
        f"  task t: custom foreach i in params.items {{\n    uses = {USES}  data = prep.output  n = i\n  }}\n",
        f"  task sink: custom {{\n    uses = {USES}  parts = t[*].output\n  }}\n",
    ]
    edges = [("prep", f"t[{i}]") for i in range(k)] + [(f"t[{i}]", "sink") for i in range(k)]
    return _workflow("foreach", tasks, params), edges


def snakefile(edges: list[tuple[str, str]], nodes: list[str]) -> str:
    """One wildcard rule over the same graph (a rule per task would only slow Snakemake)."""
    ids = {name: i for i, name in enumerate(nodes)}
    deps: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for a, b in edges:
        deps[ids[b]].append(ids[a])
    has_down = {ids[a] for a, _ in edges}
    sinks = [i for i in range(len(nodes)) if i not in has_down]
    return (
        f"DEPS = {deps!r}\n\n"
        f"rule all:\n    input: expand('out/{{i}}.txt', i={sinks!r})\n\n"
        "rule step:\n"
        "    input: lambda wc: [f'out/{d}.txt' for d in DEPS[int(wc.i)]]\n"
        "    output: 'out/{i}.txt'\n"
        "    shell: 'touch {output}'\n"
    )


def nodes_of(text: str, edges: list[tuple[str, str]]) -> list[str]:
    seen = dict.fromkeys(re.findall(r"^  task ([A-Za-z_][A-Za-z0-9_]*)", text, re.M))
    for a, b in edges:
        seen.setdefault(a)
        seen.setdefault(b)
    if "t" in seen and any(k.startswith("t[") for k in seen):  # the foreach template itself
        del seen["t"]
    return list(seen)


# ----------------------------------------------------------------------------- the lower bound

LOWER_BOUND_CHILD = r"""
import sys, time
t0 = time.perf_counter()
from lark import Lark
import networkx as nx
grammar, text_path, edges_path = sys.argv[1:4]
parser = Lark.open(grammar, parser="lalr", lexer="basic", cache=True)
text = open(text_path, encoding="utf-8").read()
t1 = time.perf_counter()
tree = parser.parse(text)
t2 = time.perf_counter()
g = nx.DiGraph()
with open(edges_path, encoding="utf-8") as f:
    g.add_edges_from(line.split() for line in f)
has_cycle = not nx.is_directed_acyclic_graph(g)
order = list(nx.topological_sort(g))
t3 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t1:.4f} {t3 - t2:.4f} {len(order)} {has_cycle}")
"""


def lower_bound(path: Path, edges_path: Path) -> tuple[float, float, dict]:
    """Run the lower bound in a fresh process: wall, CPU, and its own startup/parse/graph
    seconds."""
    with tempfile.TemporaryFile("w+") as out:
        cmd = [str(PYTHON), "-c", LOWER_BOUND_CHILD, str(GRAMMAR), str(path), str(edges_path)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=out, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        fields = out.read().split()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, {"startup": float(fields[0]), "parse": float(fields[1]), "graph": float(fields[2])}


# ----------------------------------------------------------------------------- timing


class CommandFailed(RuntimeError):
    pass


def wall(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd`` in a fresh process.

    CPU time (user + system of the child) is reported too because on a shared machine it
    is much steadier than wall time; both are "best of N".
    """
    with tempfile.TemporaryFile("w+") as log:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            log.seek(0)
            tail = log.read()[-3000:]
            raise CommandFailed(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def best(repeat: int, fn) -> tuple[float, float]:
    """Best wall time and best CPU time over ``repeat`` runs of ``fn() -> (wall, cpu)``."""
    runs = [fn() for _ in range(repeat)]
    return min(w for w, _ in runs), min(c for _, c in runs)


def mlw_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH", "")]))
    return env


def compile_bytecode() -> None:
    """Byte-compile mlflowdsl (and the task module) up front, as ``pip install`` does for an
    installed package and did for lark and networkx, which the lower bound imports: with
    PYTHONDONTWRITEBYTECODE set (as on the shared machine), an editable checkout would
    otherwise recompile every mlflowdsl module from source on each timed run."""
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", str(ROOT / "mlflowdsl"), str(ROOT / "stdlib_tasks"),
                    str(BENCH / "compile_tasks.py")], check=True, stdout=subprocess.DEVNULL)


def ensure_snakemake() -> bool:
    if SNAKEMAKE.exists():
        return True
    print(f"creating {SNAKE_VENV} with snakemake (once) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(SNAKE_VENV)], check=True)
        subprocess.run([str(SNAKE_VENV / "bin" / "pip"), "install", "--quiet", "snakemake>=8"], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"snakemake unavailable ({exc}); its column stays empty", file=sys.stderr)
        return False
    return SNAKEMAKE.exists()


def snakemake_version() -> str:
    try:
        return subprocess.run([str(SNAKEMAKE), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run_case(shape: str, n: int, work: Path, repeat: int, with_snakemake: bool) -> dict:
    text, edges = generate(shape, n)
    case = work / f"{shape}_{n}"
    case.mkdir(parents=True, exist_ok=True)
    path = case / f"{shape}_{n}.mlw"
    path.write_text(text, encoding="utf-8")
    edges_path = case / "edges.txt"
    edges_path.write_text("".join(f"{a} {b}\n" for a, b in edges), encoding="utf-8")
    env = mlw_env()
    row: dict = {"shape": shape, "tasks": n, "bytes": len(text)}

    lb_parts: dict = {}

    def lb() -> tuple[float, float]:
        elapsed, cpu, parts = lower_bound(path, edges_path)
        if not lb_parts or parts["parse"] + parts["graph"] < lb_parts["parse"] + lb_parts["graph"]:
            lb_parts.update(parts)
        return elapsed, cpu

    row["lower"], row["lower_cpu"] = best(repeat, lb)
    row["lower_parse"], row["lower_graph"] = lb_parts["parse"], lb_parts["graph"]
    row["lint"], row["lint_cpu"] = best(repeat, lambda: wall([str(MLW), "lint", str(path)], env))
    out = case / "plan.json"
    row["compile"], row["compile_cpu"] = best(
        repeat, lambda: wall([str(MLW), "compile", str(path), "-o", str(out)], env)
    )
    if with_snakemake:
        sm = case / "snakemake"
        sm.mkdir(exist_ok=True)
        (sm / "Snakefile").write_text(snakefile(edges, nodes_of(text, edges)), encoding="utf-8")
        try:
            row["snakemake"], row["snakemake_cpu"] = best(
                repeat, lambda: wall([str(SNAKEMAKE), "-n", "-c1", "-s", "Snakefile", "all"], cwd=sm)
            )
        except CommandFailed as exc:
            # e.g. a long chain exceeds Python's recursion limit while Snakemake builds its DAG
            found = re.findall(r"(\w+Error)", str(exc))
            row["snakemake_error"] = found[-1] if found else "failed"
            print(f"snakemake failed on {shape} {n}: {row['snakemake_error']}", file=sys.stderr)
    return row


# ----------------------------------------------------------------------------- reporting


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import lark
    import networkx

    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "lark": lark.__version__,
        "networkx": networkx.__version__,
    }


def table(rows: list[dict]) -> str:
    head = (
        "| shape | tasks | lower bound s (its parse + graph) | mlw lint s | mlw compile s | compile / lower "
        "| snakemake -n s | snakemake / compile |"
    )
    lines = [head, "|" + "---|" * 8]

    def pair(r: dict, key: str) -> str:
        return f"{r[key]:.2f} / {r[key + '_cpu']:.2f}"

    for r in rows:
        sm = r.get("snakemake")
        if sm:
            sm_s = pair(r, "snakemake")
            sm_ratio = f"{sm / r['compile']:.1f}x / {r['snakemake_cpu'] / r['compile_cpu']:.1f}x"
        else:
            sm_s = f"fails ({r['snakemake_error']})" if r.get("snakemake_error") else "—"
            sm_ratio = "—"
        ratio = f"{r['compile'] / r['lower']:.2f}x / {r['compile_cpu'] / r['lower_cpu']:.2f}x"
        lines.append(
            f"| {r['shape']} | {r['tasks']:,} | {pair(r, 'lower')} ({r['lower_parse']:.2f} + {r['lower_graph']:.2f}) "
            f"| {pair(r, 'lint')} | {pair(r, 'compile')} | {ratio} | {sm_s} | {sm_ratio} |"
        )
    return "\n".join(lines)


def record(rows: list[dict], big: dict | None, info: dict, args, snake_version: str, parsing: str) -> None:
    results = BENCH / "RESULTS.md"
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    big_line = (
        f"\n{args.foreach_big:,}-task `foreach` expansion: `mlw lint` {big['lint']:.2f} s "
        f"(CPU {big['lint_cpu']:.2f} s), `mlw compile` {big['compile']:.2f} s (CPU {big['compile_cpu']:.2f} s); "
        "target < 10 s.\n" if big else ""
    )
    section = (
        "## Compile\n\n"
        f"`{' '.join(['python', 'bench/compile_scale.py'] + sys.argv[1:])}` — {info['date']}; "
        f"{info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, lark {info['lark']}, "
        f"networkx {info['networkx']}, {snake_version}. Each cell is `wall / CPU` seconds of a fresh "
        f"process (CPU = user + system), best of {args.repeat}; the lower bound's own parse and graph "
        "times (measured inside its process) in parentheses. The machine is shared by other jobs, so "
        "CPU times are the steadier figures.\n\n"
        + table(rows) + "\n" + big_line + "\n" + parsing + "\n"
        + "\nTargets: a 10,000-task file compiles within 1.5x the lower bound and at least 2x faster "
        "than `snakemake -n`; a 100,000-task `foreach` expansion compiles in under 10 s.\n"
    )
    pattern = re.compile(r"^## Compile\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text, encoding="utf-8")
    print(f"recorded in {results}")


def parse_only(n: int = 10_000, shape: str = "dag", repeat: int = 3) -> dict:
    """In-process CPU seconds of parsing alone: Lark's bare tree vs ``parse_text`` (the AST with
    spans), each with the garbage collector on and off (the compiler turns it off)."""
    import gc

    from lark import Lark

    from mlflowdsl.grammar.parser import parse_text

    text, _ = generate(shape, n)
    bare = Lark.open(str(GRAMMAR), parser="lalr", lexer="basic", cache=True)
    parse_text(text)
    out = {}
    for gc_on in (True, False):
        for name, fn in (("bare", lambda: bare.parse(text)), ("mlw", lambda: parse_text(text))):
            times = []
            for _ in range(repeat):
                gc.enable() if gc_on else gc.disable()
                start = time.process_time()
                fn()
                times.append(time.process_time() - start)
                gc.enable()
            out[(name, gc_on)] = min(times)
    return out


def parse_line(n: int, p: dict) -> str:
    return (
        f"Parsing alone, in-process CPU s for the {n:,}-task `dag` file (GC on / off): bare Lark LALR "
        f"tree {p[('bare', True)]:.2f} / {p[('bare', False)]:.2f}; `parse_text` (frozen AST with spans, "
        f"comments) {p[('mlw', True)]:.2f} / {p[('mlw', False)]:.2f}."
    )


def profile(n: int, shape: str) -> None:
    """cProfile of one in-process compile (after a warm-up), top functions by own time."""
    import cProfile
    import pstats

    sys.path.insert(0, str(BENCH))
    from mlflowdsl.compiler.api import compile_file

    text, _ = generate(shape, n)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{shape}.mlw"
        path.write_text(text, encoding="utf-8")
        compile_file(str(path))
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        compile_file(str(path))
        prof.disable()
        print(f"in-process compile of {n} tasks ({shape}): {time.perf_counter() - start:.2f} s (profiled)")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,50000", help="comma-separated task counts")
    ap.add_argument("--shapes", default="chain,fan,dag,foreach")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--quick", action="store_true", help="sizes 1000,10000, best of 1, no 100k foreach")
    ap.add_argument("--foreach-big", type=int, default=100_000, help="size of the big foreach run (0: skip)")
    ap.add_argument("--no-snakemake", action="store_true")
    ap.add_argument("--record", action="store_true", help="write the table into bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the generated files (printed)")
    ap.add_argument("--profile", type=int, metavar="N", help="only profile an in-process compile of N tasks")
    args = ap.parse_args(argv)
    if args.profile:
        profile(args.profile, args.shapes.split(",")[0])
        return 0
    if args.quick:
        args.sizes, args.repeat, args.foreach_big = "1000,10000", 1, 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    shapes = [s for s in args.shapes.split(",") if s]
    with_snakemake = not args.no_snakemake and ensure_snakemake()
    compile_bytecode()
    work = Path(tempfile.mkdtemp(prefix="mlw-compile-bench-"))
    rows: list[dict] = []
    try:
        for n in sizes:
            for shape in shapes:
                row = run_case(shape, n, work, args.repeat, with_snakemake)
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
        big = None
        if args.foreach_big:
            text, _ = generate("foreach", args.foreach_big)
            path = work / "foreach_big.mlw"
            path.write_text(text, encoding="utf-8")
            env = mlw_env()
            lint = best(args.repeat, lambda: wall([str(MLW), "lint", str(path)], env))
            compile_ = best(args.repeat, lambda: wall([str(MLW), "compile", str(path), "-o", str(work / "big.json")], env))
            big = {"lint": lint[0], "lint_cpu": lint[1], "compile": compile_[0], "compile_cpu": compile_[1]}
            print(f"foreach {args.foreach_big:,}: lint {lint[0]:.2f} s (CPU {lint[1]:.2f} s), "
                  f"compile {compile_[0]:.2f} s (CPU {compile_[1]:.2f} s)", flush=True)
        tiny = work / "tiny.mlw"
        tiny.write_text(generate("chain", 1)[0], encoding="utf-8")
        env = mlw_env()
        start_mlw = best(args.repeat, lambda: wall([str(MLW), "lint", str(tiny)], env))
        start_lb = best(args.repeat, lambda: wall([str(PYTHON), "-c", "import lark, networkx"]))
        startup = (
            f"Fixed start-up cost, wall / CPU s: `mlw lint` of a one-task file {start_mlw[0]:.2f} / "
            f"{start_mlw[1]:.2f}; the lower bound's interpreter + `import lark, networkx` "
            f"{start_lb[0]:.2f} / {start_lb[1]:.2f}."
        )
        print(startup, flush=True)
        parse_n = 10_000 if 10_000 in sizes else sizes[-1]
        parsing = startup + "\n\n" + parse_line(parse_n, parse_only(parse_n, repeat=max(2, args.repeat)))
        print(parsing, flush=True)
        info = machine()
        version = f"snakemake {snakemake_version()}" if with_snakemake else "no snakemake"
        print()
        print(f"{info['date']} · {info['nproc']} CPUs ({info['cpu']}) · Python {info['python']} · lark {info['lark']}"
              f" · {version}")
        print(table(rows))
        if args.record:
            record(rows, big, info, args, version, parsing)
    finally:
        if args.keep:
            print(f"generated files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
