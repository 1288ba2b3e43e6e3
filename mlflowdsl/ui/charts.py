"""Small inline SVG charts of the UI pages (no JavaScript charting library, so pages work
offline): a metric across executions, a study's optimization history, parameter importances.

>>> svg = line_chart([("a", 1.0), ("b", None), ("c", 3.0)], title="acc")
>>> svg.count('class="point"'), "acc" in svg
(2, True)
"""

from __future__ import annotations

from markupsafe import Markup, escape

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 720, 260, 56, 40, 28, 40


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(points: list[tuple[str, float | None]], *, title: str = "",
               best: list[float | None] | None = None) -> Markup:
    """Points in order (label, value; None leaves a gap), with an optional best-so-far line."""
    values = [v for _, v in points if v is not None] + [b for b in (best or []) if b is not None]
    if not values:
        return Markup('<p class="empty">No values to draw.</p>')
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (i / n if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{PAD_L}" y="16" font-size="12" fill="#333">{escape(title)}</text>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" fill="#666">{_fmt(v)}</text>')
    line = [f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points) if v is not None]
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#2b8cbe" stroke-width="1.5"/>')
    if best:
        steps = [f"{x(i):.1f},{y(b):.1f}" for i, b in enumerate(best) if b is not None]
        if len(steps) > 1:
            parts.append(f'<polyline class="best" points="{" ".join(steps)}" fill="none" stroke="#2e9d5b" '
                         'stroke-width="2" stroke-dasharray="4 3"/>')
    every = max(1, len(points) // 12)
    for i, (label, v) in enumerate(points):
        if i % every == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{H - PAD_B + 16}" font-size="10" text-anchor="middle" '
                         f'fill="#666">{escape(label[:10])}</text>')
        if v is not None:
            parts.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="#2b8cbe">'
                         f'<title>{escape(label)}: {_fmt(v)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(items: list[tuple[str, float]], *, title: str = "") -> Markup:
    """Horizontal bars (e.g. parameter importances), largest first as given."""
    if not items:
        return Markup('<p class="empty">No values to draw.</p>')
    top = max(v for _, v in items) or 1.0
    row, label_w = 24, 160
    height = PAD_T + row * len(items) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" width="{W}" height="{height}" '
             f'viewBox="0 0 {W} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="4" y="16" font-size="12" fill="#333">{escape(title)}</text>']
    for i, (name, v) in enumerate(items):
        yy = PAD_T + i * row
        bw = max((W - label_w - 80) * v / top, 1)
        parts.append(f'<text x="{label_w - 6}" y="{yy + 15}" font-size="11" text-anchor="end" fill="#333">{escape(name[:24])}</text>'
                     f'<rect class="bar" x="{label_w}" y="{yy + 3}" width="{bw:.1f}" height="{row - 8}" fill="#6a51a3" rx="2"/>'
                     f'<text x="{label_w + bw + 6:.1f}" y="{yy + 15}" font-size="11" fill="#333">{_fmt(v)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
