"""Inline SVG for the run report: the DAG (a layered layout) and a Gantt timeline per worker.

Drawn here rather than by a JavaScript library so the report opens without a network. Every
text is escaped; the result is ``markupsafe.Markup`` for the template.

>>> svg = dag_svg(["a", "b"], [("a", "b")], {"a": "succeeded", "b": "failed"})
>>> svg.count("<g class=\\"node"), 'data-task="b"' in svg
(2, True)
"""

from __future__ import annotations

from typing import Iterable

from markupsafe import Markup, escape

from mlflowdsl.ir import topological_order

STATUS_COLOR = {"succeeded": "#2e9d5b", "cached": "#2b8cbe", "failed": "#d7301f", "skipped": "#b8b8b8",
                "running": "#6a51a3", "pending": "#e0e0e0"}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 34, 60, 16, 12


def _label(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layers(nodes: list[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Nodes by depth (longest path from a source), in input order within a layer.

    >>> layers(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "c")])
    [['a', 'd'], ['b'], ['c']]
    """
    preds: dict[str, list[str]] = {node: [] for node in nodes}
    for a, b in edges:
        if a in preds and b in preds:
            preds[b].append(a)
    depth: dict[str, int] = {}
    for node in topological_order(preds):
        depth[node] = max((depth[p] + 1 for p in preds[node]), default=0)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in nodes:
        out[depth[node]].append(node)
    return out


def dag_svg(nodes: list[str], edges: list[tuple[str, str]], status: dict[str, str]) -> Markup:
    """Left-to-right layered drawing; a node's colour is its task's status."""
    cols = layers(nodes, edges)
    pos: dict[str, tuple[float, float]] = {}
    for i, col in enumerate(cols):
        for j, node in enumerate(col):
            pos[node] = (PAD + i * (NODE_W + GAP_X), PAD + j * (NODE_H + GAP_Y))
    width = PAD * 2 + max(len(cols), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(c) for c in cols), default=1) * (NODE_H + GAP_Y) - GAP_Y
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="task graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>']
    for a, b in edges:
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
                     f'{x2:.0f},{y2:.0f}" fill="none" stroke="#999" stroke-width="1.3" marker-end="url(#arrow)"/>')
    for node in nodes:
        x, y = pos[node]
        st = status.get(node, "pending")
        color = STATUS_COLOR.get(st, "#e0e0e0")
        text_color = "#222" if st in ("pending", "skipped") else "#fff"
        parts.append(
            f'<g class="node status-{escape(st)}" data-task="{escape(node)}"><title>{escape(node)}: {escape(st)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{color}"/>'
            f'<text x="{x + NODE_W / 2:.0f}" y="{y + NODE_H / 2 + 4:.0f}" text-anchor="middle" '
            f'fill="{text_color}" font-size="12">{escape(_label(node))}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def pack(bars: list[dict]) -> list[list[dict]]:
    """Overlapping bars of one lane in rows (a worker with several threads, or a tuned task
    spanning its trials): each bar goes to the first row that is free at its start.

    >>> [[b["task"] for b in row] for row in pack([{"task": "a", "start": 0, "end": 5},
    ...      {"task": "b", "start": 1, "end": 2}, {"task": "c", "start": 3, "end": 4}])]
    [['a'], ['b', 'c']]
    """
    rows: list[list[dict]] = []
    for bar in sorted(bars, key=lambda b: (b["start"], -b["end"])):
        row = next((r for r in rows if r[-1]["end"] <= bar["start"]), None)
        if row is None:
            rows.append([bar])
        else:
            row.append(bar)
    return rows


def gantt_svg(bars: list[dict], *, width: int = 960) -> Markup:
    """One lane per worker; ``bars`` are dicts with task, worker, start, end, status (unix times)."""
    if not bars:
        return Markup('<p class="empty">No task ran on a worker in this execution (all cached or skipped).</p>')
    workers = sorted({b["worker"] or "unknown" for b in bars})
    lanes = {w: pack([b for b in bars if (b["worker"] or "unknown") == w]) for w in workers}
    t0 = min(b["start"] for b in bars)
    span = max(max(b["end"] for b in bars) - t0, 1e-3)
    label_w, row_h, axis_h, lane_gap = 190, 24, 24, 6
    scale = (width - label_w - PAD * 3) / span
    height = axis_h + sum(len(rows) * row_h + lane_gap for rows in lanes.values()) + PAD
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline per worker">']
    for k in range(6):  # time axis
        t = span * k / 5
        x = label_w + t * scale
        parts.append(f'<line x1="{x:.1f}" y1="{axis_h - 6}" x2="{x:.1f}" y2="{height - PAD}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{axis_h - 10}" font-size="10" text-anchor="middle" fill="#666">'
                     f'{t:.2f}s</text>')
    y = axis_h
    for w in workers:
        rows = lanes[w]
        parts.append(f'<text x="4" y="{y + row_h / 2 + 4:.0f}" font-size="11" fill="#333">{escape(_label(w, 28))}</text>')
        for row in rows:
            for b in row:
                x = label_w + (b["start"] - t0) * scale
                bw = max((b["end"] - b["start"]) * scale, 2)
                color = STATUS_COLOR.get(b["status"], "#999")
                parts.append(f'<rect class="bar" data-task="{escape(b["task"])}" x="{x:.1f}" y="{y + 3}" '
                             f'width="{bw:.1f}" height="{row_h - 6}" rx="3" fill="{color}" opacity="0.85">'
                             f'<title>{escape(b["task"])} · {escape(b["status"])} · {b["end"] - b["start"]:.3f}s</title></rect>')
                if bw > 7 * len(b["task"]) + 8:  # the task's name inside its bar, when it fits
                    parts.append(f'<text x="{x + 4:.1f}" y="{y + row_h / 2 + 4:.0f}" font-size="11" fill="#fff">'
                                 f'{escape(b["task"])}</text>')
            y += row_h
        y += lane_gap
        parts.append(f'<line x1="0" y1="{y - lane_gap / 2:.0f}" x2="{width}" y2="{y - lane_gap / 2:.0f}" stroke="#f0f0f0"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
