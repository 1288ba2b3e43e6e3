"""The plan as a Mermaid flowchart (task ids are shown as labels; node names are ``t0, t1...``
in plan order, because Mermaid ids cannot hold ``[`` or ``.``)."""

from __future__ import annotations

from mlflowdsl import ir


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(plan: ir.Plan) -> str:
    names = {t.id: f"t{i}" for i, t in enumerate(plan.tasks)}
    tuned = {t.task for t in plan.tunings}
    lines = ["flowchart LR"]
    for t in plan.tasks:
        note = " (skipped)" if t.skip else (" (tuned)" if t.id in tuned else "")
        lines.append(f'  {names[t.id]}["{_label(t.id)}<br/>{t.type}{note}"]')
    for t in plan.tasks:
        for dep in t.dependencies:
            lines.append(f"  {names[dep]} --> {names[t.id]}")
    return "\n".join(lines) + "\n"
