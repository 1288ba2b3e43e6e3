"""The plan as canonical JSON (``mlflowdsl.canonical_json``): sorted keys, 2-space indent,
trailing newline — the text of ``Plan.canonical_json()``."""

from __future__ import annotations

from mlflowdsl import canonical_json, ir
from mlflowdsl.compiler.plan_text import indented


def render_json_plan(plan: ir.Plan) -> str:
    text = indented(plan, end="\n")  # the same bytes, without dumping every task again
    if text is None:  # values the fast path leaves to the reference (see plan_text)
        text = canonical_json.dumps(plan.canonical_dict()) + "\n"
    return text
