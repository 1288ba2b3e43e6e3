"""The optional code lens "cached / will run (reason)" over each task, from ``mlw plan FILE
--format json`` run as a separate process when the file is saved (the planner reads the
caches and the state store; the server itself never imports the runtime).

Turned on by the client's initialization option ``{"planLens": true}``; off by default, since
planning may reach a shared cache (Redis) on every save.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys

from lsprotocol import types

from mlflowdsl.lsp.analysis import Analysis

PLAN_TIMEOUT = 120.0
_BASE = re.compile(r"[.\[]")


async def plan_statuses(path: str) -> list[dict] | None:
    """The tasks of ``mlw plan PATH --format json`` (None when the file does not compile or
    planning fails)."""
    cmd = [sys.executable, "-c", "from mlflowdsl.cli import main; main()", "plan", path, "--format", "json"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PLAN_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    if proc.returncode != 0:
        return None
    try:
        return json.loads(out)["tasks"]
    except (ValueError, KeyError, TypeError):
        return None


def _title(statuses: list[dict]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    if len(statuses) == 1:
        s = statuses[0]
        reasons = ", ".join(s.get("reasons") or [])
        return s["status"] + (f" ({reasons})" if reasons and s["status"] != "cached" else "")
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def code_lenses(a: Analysis, statuses: list[dict]) -> list[types.CodeLens]:
    """One lens per task (a template use or a ``foreach`` task gathers its expanded tasks)."""
    if a.index is None:
        return []
    by_base: dict[str, list[dict]] = {}
    for s in statuses:
        by_base.setdefault(_BASE.split(s["task_id"], 1)[0], []).append(s)
    out = []
    for (scope, name), node in list(a.index.tasks.items()) + list(a.index.uses.items()):
        if scope != "workflow" or name not in by_base:
            continue
        span = node.id_span if hasattr(node, "id_span") else node.alias_span
        out.append(types.CodeLens(range=a.lines.range(span),
                                  command=types.Command(title=_title(by_base[name]), command="")))
    return sorted(out, key=lambda lens: (lens.range.start.line, lens.range.start.character))
