"""Promotion gates: compare a candidate's metrics with the current alias holder's, like
MLflow's ``MetricThreshold`` (``min_absolute_change``/``min_relative_change``).

For a metric where higher is better the candidate passes when
``candidate - baseline >= min_delta`` and ``(candidate - baseline) / |baseline| >= min_relative``;
for a loss (``log_loss``, ``rmse``, ``mae``) the improvement is ``baseline - candidate``. With the
defaults (0, 0) the candidate must be at least as good; set ``min_delta`` to demand an improvement.
No baseline (nobody holds the alias yet) passes, and the check says so.

>>> c = compare("accuracy", 0.91, 0.90, min_delta=0.02)
>>> c["passed"], c["message"]
(False, 'accuracy = 0.9100 vs champion 0.9000: improvement 0.0100 is below min_delta 0.02 by 0.0100')
>>> compare("rmse", 3.0, 4.0)["passed"]
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflowdsl.runtime.registry.models import GateRefused, ModelVersion

LOSS_METRICS = frozenset({"log_loss", "rmse", "mae", "mse"})
PRIMARY_METRIC = {"classification": "accuracy", "regression": "r2"}


def compare(metric: str, candidate: float, baseline: float | None, *, min_delta: float = 0.0,
            min_relative: float = 0.0, against: str = "champion") -> dict[str, Any]:
    """One metric comparison as a plain dict (``passed``, ``improvement``, ``message``...)."""
    if baseline is None:
        return {"metric": metric, "value": candidate, "baseline": None, "passed": True, "improvement": None,
                "message": f"{metric} = {candidate:.4f}; no {against} to compare with: passes"}
    lower_is_better = metric in LOSS_METRICS
    improvement = (baseline - candidate) if lower_is_better else (candidate - baseline)
    relative = improvement / abs(baseline) if baseline else (0.0 if improvement == 0 else float("inf"))
    problems = []
    if improvement < min_delta:
        problems.append(f"improvement {improvement:.4f} is below min_delta {min_delta:g} by {min_delta - improvement:.4f}")
    if relative < min_relative:
        problems.append(f"relative improvement {relative:.2%} is below min_relative {min_relative:.2%}")
    head = f"{metric} = {candidate:.4f} vs {against} {baseline:.4f}"
    return {"metric": metric, "value": candidate, "baseline": baseline, "passed": not problems,
            "improvement": improvement, "relative": relative, "lower_is_better": lower_is_better,
            "message": head + (": " + "; ".join(problems) if problems else ": passes")}


@dataclass(frozen=True)
class Gate:
    """Promote only when the candidate beats the holder of ``against`` on ``metrics``
    (default: the problem's primary metric) by at least ``min_delta``/``min_relative``."""

    against: str = "champion"
    metrics: tuple[str, ...] = ()
    min_delta: float = 0.0
    min_relative: float = 0.0
    baseline_metrics: dict[str, float] | None = field(default=None)  # measured now, else the holder's recorded

    def metric_names(self, candidate: ModelVersion) -> tuple[str, ...]:
        if self.metrics:
            return self.metrics
        primary = PRIMARY_METRIC.get(candidate.model_type)
        if primary and primary in candidate.metrics:
            return (primary,)
        return tuple(sorted(candidate.metrics))[:1]

    def checks(self, candidate: ModelVersion, holder: ModelVersion | None) -> list[dict[str, Any]]:
        """The comparisons of ``candidate`` with ``holder``; raises :class:`GateRefused` on a failure."""
        names = self.metric_names(candidate)
        if not names:
            raise GateRefused(f"cannot gate {candidate.id}: it has no recorded metrics", checks=[],
                              hint="register the model with metrics, or promote without a gate")
        if holder is not None and holder.version == candidate.version:
            return [{"metric": m, "passed": True, "message": f"{candidate.id} already holds {self.against}"} for m in names]
        baseline = self.baseline_metrics if self.baseline_metrics is not None else (holder.metrics if holder else {})
        results = []
        for metric in names:
            if metric not in candidate.metrics:
                raise GateRefused(f"{candidate.id} has no metric {metric!r}", checks=results,
                                  hint=f"its metrics: {', '.join(sorted(candidate.metrics)) or 'none'}")
            base = baseline.get(metric) if holder is not None else None
            if holder is not None and base is None:
                raise GateRefused(f"the {self.against} holder {holder.id} has no metric {metric!r} to compare with",
                                  checks=results, hint="choose a metric both versions have")
            results.append(compare(metric, float(candidate.metrics[metric]), base, min_delta=self.min_delta,
                                   min_relative=self.min_relative,
                                   against=f"{self.against} ({holder.id})" if holder else self.against))
        failed = [c for c in results if not c["passed"]]
        if failed:
            raise GateRefused(f"promotion of {candidate.id} to @{self.against} refused: "
                              + "; ".join(c["message"] for c in failed), checks=results,
                              hint="improve the model, or lower min_delta/min_relative")
        return results
