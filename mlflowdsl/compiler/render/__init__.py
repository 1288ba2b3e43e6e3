"""Renderers of a compiled plan: canonical JSON, Graphviz DOT and Mermaid (all deterministic).

>>> from mlflowdsl import ir
>>> p = ir.Plan(workflow=ir.Workflow(id="w"), tasks=[ir.Task(id="a", type="custom", uses="m:f")])
>>> print(render(p, "mermaid"), end="")
flowchart LR
  t0["a<br/>custom"]
"""

from __future__ import annotations

from mlflowdsl import ir
from mlflowdsl.compiler.perf import no_gc_pauses
from mlflowdsl.compiler.render.dot import render_dot
from mlflowdsl.compiler.render.plan_json import render_json_plan
from mlflowdsl.compiler.render.mermaid import render_mermaid

FORMATS = {"json": render_json_plan, "dot": render_dot, "mermaid": render_mermaid}


def render(plan: ir.Plan, fmt: str = "json") -> str:
    with no_gc_pauses():
        return FORMATS[fmt](plan)
