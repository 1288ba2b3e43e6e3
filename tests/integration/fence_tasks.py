"""A custom task with a side effect, for the fencing tests: it leaves a marker when an attempt
starts and another when it makes its effect (after ``ctx.check_owner()``), so a test counts
attempts and effects per task across processes."""

from __future__ import annotations

import time

from mlflowdsl.tasks import TaskContext, TaskOutputs
from tests.integration.tasks_for_tests import _log


def effect(name: str, log_dir: str, ctx: TaskContext, seconds: float = 0.0, x: int = 0,
           inputs: list | None = None) -> TaskOutputs:
    """Log ``<name>.attempt`` at the start; sleep; then, if the execution is still ours, log
    ``<name>.effect`` (the side effect) and ``<name>`` (as ``step`` does)."""
    start = time.time()
    _log(log_dir, f"{name}.attempt", start=start, execution=ctx.execution_id)
    time.sleep(seconds)
    ctx.check_owner("the effect")
    _log(log_dir, f"{name}.effect", start=start, end=time.time())
    _log(log_dir, name, start=start, end=time.time())
    total = x + sum(inputs or [])
    return TaskOutputs(outputs={"output": total}, metrics={"total": float(total)})


def effect_chain(n: int, *, logs, seconds: float, name: str = "fenced") -> str:
    """``n`` effect tasks in a chain, disk-cached, in the default domain."""
    lines = [f"workflow {name} {{", f'  params {{ logs: str = "{logs}" }}', "  defaults { cache { strategy = disk } }"]
    for i in range(n):
        after = f" after t{i - 1:02d}" if i else ""
        lines.append(f'  task t{i:02d}: custom{after} {{ uses = "tests.integration.fence_tasks:effect"  '
                     f'name = "t{i:02d}"  log_dir = params.logs  seconds = {seconds}  x = {i + 1} }}')
    lines.append("}")
    return "\n".join(lines) + "\n"
