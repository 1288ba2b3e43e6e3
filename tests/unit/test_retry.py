import random

import pytest

from mlflowdsl.ir import RetryPolicy
from mlflowdsl.runtime.retry import backoff_delay, delay_cap, should_retry


def test_exponential_doubles_until_max():
    p = RetryPolicy(attempts=10, backoff="exponential", initial=0.5, max=5, jitter=False)
    assert [delay_cap(p, n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_fixed_and_none():
    fixed = RetryPolicy(attempts=3, backoff="fixed", initial=2, max=10, jitter=False)
    assert [delay_cap(fixed, n) for n in (1, 2, 3)] == [2.0, 2.0, 2.0]
    capped = RetryPolicy(attempts=3, backoff="fixed", initial=20, max=10, jitter=False)
    assert delay_cap(capped, 1) == 10.0
    none = RetryPolicy(attempts=3, backoff="none", initial=2, max=10)
    assert backoff_delay(none, 2) == 0.0


def test_huge_attempt_numbers_do_not_overflow():
    p = RetryPolicy(attempts=10_000, backoff="exponential", initial=1, max=30, jitter=False)
    assert delay_cap(p, 5000) == 30.0


def test_full_jitter_stays_within_zero_and_cap_and_varies():
    p = RetryPolicy(attempts=5, backoff="exponential", initial=1, max=60, jitter=True)
    rng = random.Random(7)
    draws = [backoff_delay(p, 3, rng) for _ in range(500)]
    assert all(0.0 <= d <= 4.0 for d in draws)
    assert min(draws) < 0.5 and max(draws) > 3.5  # spread over the whole range


def test_jitter_is_reproducible_with_a_seeded_rng():
    p = RetryPolicy(attempts=5, jitter=True)
    assert backoff_delay(p, 2, random.Random(1)) == backoff_delay(p, 2, random.Random(1))


def test_should_retry_respects_attempts_and_retryable():
    p = RetryPolicy(attempts=3)
    assert should_retry(p, attempt=1, retryable=True)
    assert should_retry(p, attempt=2, retryable=True)
    assert not should_retry(p, attempt=3, retryable=True)
    assert not should_retry(p, attempt=1, retryable=False)


def test_attempt_numbers_are_one_based():
    with pytest.raises(ValueError):
        delay_cap(RetryPolicy(), 0)
