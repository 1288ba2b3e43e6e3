"""The study summary of tuned tasks, under ``mlw run`` and ``mlw status`` tables."""

from __future__ import annotations

from typing import Any

MAX_ROWS = 20  # the best trials; the JSON output (--json) has them all


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def study_lines(task_id: str, study: dict[str, Any]) -> list[str]:
    """One headline and the importances, as plain text.

    >>> lines = study_lines("train", {"metric": "accuracy", "direction": "maximize", "best_value": 0.9,
    ...     "best_params": {"d": 3}, "best_trial": 2, "counts": {"complete": 4}, "trainings": 1,
    ...     "cache_hits": 3, "sampler": "tpe", "pruner": "none", "importances": {"d": 1.0}, "trials": []})
    >>> lines[0]
    'study of train (tpe, pruner none): best accuracy = 0.9 (maximize) at trial 2 with d=3'
    >>> lines[1:]
    ['trials: complete 4; trained 1, from cache 3', 'importance: d 1']
    """
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted((study.get("best_params") or {}).items()))
    counts = ", ".join(f"{k} {v}" for k, v in sorted((study.get("counts") or {}).items()))
    lines = [f"study of {task_id} ({study.get('sampler')}, pruner {study.get('pruner')}): best {study.get('metric')} = "
             f"{_fmt(study.get('best_value'))} ({study.get('direction')}) at trial {study.get('best_trial')} with {params}",
             f"trials: {counts}; trained {study.get('trainings', 0)}, from cache {study.get('cache_hits', 0)}"]
    if study.get("importances"):
        lines.append("importance: " + ", ".join(f"{k} {_fmt(v)}" for k, v in study["importances"].items()))
    return lines


def trials_table(study: dict[str, Any]) -> Any:
    from rich.table import Table

    names = sorted({k for t in study.get("trials", []) for k in t.get("params", {})})
    table = Table(title=None, show_edge=True)
    for col in ("trial", "state", study.get("metric") or "value", *names, "duration", "cache"):
        table.add_column(col)
    reverse = study.get("direction") == "maximize"
    rows = sorted(study.get("trials", []), key=lambda t: (t.get("value") is None,
                                                           -(t["value"] or 0) if reverse else (t["value"] or 0)))
    for t in rows[:MAX_ROWS]:
        star = "*" if t.get("number") == study.get("best_trial") else ""
        table.add_row(f"{t.get('number')}{star}", t.get("state", ""), _fmt(t.get("value")),
                      *[_fmt(t.get("params", {}).get(n)) for n in names],
                      "-" if t.get("duration_s") is None else f"{t['duration_s']:.1f}s",
                      "hit" if t.get("cached") else "-")
    return table


def print_studies(out: Any, execution: Any) -> None:
    """Print every tuned task's study (nothing for workflows without ``tune``)."""
    for tid, result in execution.tasks.items():
        if not getattr(result, "study", None):
            continue
        for line in study_lines(tid, result.study):
            out.print(line, highlight=False)
        out.print(trials_table(result.study))
