"""Retry delays: exponential, fixed or none, with optional full jitter.

Pure functions, so the schedule can be tested without sleeping. "Full jitter" (AWS
Architecture blog, "Exponential Backoff And Jitter") draws the delay uniformly from
``[0, cap]``: retries of many failed tasks spread out instead of arriving together.

>>> from mlflowdsl.ir import RetryPolicy
>>> p = RetryPolicy(attempts=4, backoff="exponential", initial=1, max=3, jitter=False)
>>> [backoff_delay(p, n) for n in (1, 2, 3)]
[1.0, 2.0, 3.0]
>>> should_retry(p, attempt=4, retryable=True)
False
"""

from __future__ import annotations

import random

from mlflowdsl.ir import RetryPolicy


def delay_cap(policy: RetryPolicy, failed_attempt: int) -> float:
    """The delay before the next attempt, before jitter.

    ``failed_attempt`` is 1-based: the delay after the first failure is ``initial``.
    """
    if failed_attempt < 1:
        raise ValueError("failed_attempt is 1-based")
    if policy.backoff == "none":
        return 0.0
    if policy.backoff == "fixed":
        return float(min(policy.initial, policy.max))
    # exponential; the exponent is bounded so huge attempt counts cannot overflow a float
    raw = policy.initial * (2.0 ** min(failed_attempt - 1, 60))
    return float(min(raw, policy.max))


def backoff_delay(policy: RetryPolicy, failed_attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failed_attempt`` failed: the cap, or uniform in ``[0, cap]``
    with full jitter."""
    cap = delay_cap(policy, failed_attempt)
    if not policy.jitter or cap == 0.0:
        return cap
    return (rng or random).uniform(0.0, cap)


def should_retry(policy: RetryPolicy, *, attempt: int, retryable: bool) -> bool:
    """Whether another attempt follows the failed ``attempt`` (1-based)."""
    return retryable and attempt < policy.attempts
