"""``make demo``: compile and run ``examples/training_pipeline.mlw`` on an embedded Dask
cluster, print the task table and where the outputs are, then run it again to show that an
unchanged workflow is served from the cache.

Run it with ``python -m mlflowdsl.demo [FILE]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mlflowdsl.cli.views import Display, task_table
from mlflowdsl.cli.views import console as make_console
from mlflowdsl.compiler.api import compile_file
from mlflowdsl.errors import MlwError
from mlflowdsl.grammar.diagnostics import render_text
from mlflowdsl.runtime.api import run_plan, workflow_dir
from mlflowdsl.runtime.cluster import open_client
from mlflowdsl.settings import load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "training_pipeline.mlw"


def main(argv: list[str] | None = None) -> int:
    console = make_console()
    path = Path((argv or sys.argv[1:] or [str(EXAMPLE)])[0])
    console.print(f"[bold]mlw demo[/]: compiling {path}", highlight=False)
    result = compile_file(path)
    if not result.ok or result.plan is None:
        console.print(render_text(result.diagnostics, result.sources), highlight=False)
        return 1
    plan = result.plan
    settings = load_settings()
    console.print(f"{len(plan.tasks)} tasks: {' -> '.join(t.id for t in plan.tasks)}", highlight=False)
    try:
        started = time.perf_counter()
        console.print("starting an embedded Dask cluster "
                      f"({settings.local_workers} worker processes, {settings.local_threads_per_worker} thread each)")
        with open_client(settings, import_paths=[workflow_dir(plan)]) as client:
            console.print(f"cluster ready in {time.perf_counter() - started:.1f}s; running")
            with Display(live=True, quiet=False) as display:
                first = run_plan(plan, settings, client=client, listener=display)
            console.print(task_table(first))
            if first.status != "succeeded":
                console.print(f"[red]the workflow {first.status}[/]: {first.error}", highlight=False)
                return 1
            rerun = run_plan(plan, settings, client=client)
    except MlwError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    hits = sum(r.cached for r in rerun.tasks.values())
    console.print(f"second run of the unchanged workflow: {hits}/{len(rerun.tasks)} tasks from the cache, "
                  f"{rerun.duration_s:.2f}s", highlight=False)
    console.print("\n[bold]outputs[/]", highlight=False)
    for tid, r in first.tasks.items():
        for name, where in r.artifacts.items():
            console.print(f"  {tid}.{name}: {where}", highlight=False)
    console.print(f"  state (mlw status {first.id}): {settings.home_path.resolve() / 'state.db'}", highlight=False)
    console.print(f"  events: {settings.home_path.resolve() / 'events.jsonl'}", highlight=False)
    console.print(f"  cache: {settings.cache_path.resolve()}", highlight=False)
    console.print(f"total demo time {time.perf_counter() - started:.1f}s", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
