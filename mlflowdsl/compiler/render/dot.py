r"""The plan as a Graphviz DOT digraph: one box per task (dashed when skipped, a double
border when tuned), edges from dependency to dependent.

>>> from mlflowdsl import ir
>>> p = ir.Plan(workflow=ir.Workflow(id="w"), tasks=[
...     ir.Task(id="a", type="custom", uses="m:f"),
...     ir.Task(id="b", type="custom", uses="m:g", dependencies=["a"])])
>>> print(render_dot(p), end="")
digraph "w" {
  rankdir=LR;
  node [shape=box, style=rounded, fontname="Helvetica"];
  "a" [label="a\ncustom"];
  "b" [label="b\ncustom"];
  "a" -> "b";
}
"""

from __future__ import annotations

from mlflowdsl import ir


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(plan: ir.Plan) -> str:
    tuned = {t.task for t in plan.tunings}
    lines = [f"digraph {_quote(plan.workflow.id)} {{", "  rankdir=LR;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for t in plan.tasks:
        attrs = [f"label={_quote(t.id)[:-1]}\\n{t.type}\""]
        if t.skip:
            attrs.append('style="rounded,dashed"')
        if t.id in tuned:
            attrs.append("peripheries=2")
        lines.append(f"  {_quote(t.id)} [{', '.join(attrs)}];")
    for t in plan.tasks:
        for dep in t.dependencies:
            lines.append(f"  {_quote(dep)} -> {_quote(t.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
