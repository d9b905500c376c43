"""The retry policy's verdicts and delays."""

from __future__ import annotations

import httpx
import pytest
from billiard.exceptions import SoftTimeLimitExceeded

from newsloom.errors import Permanent, Transient
from newsloom.retry import RetryPolicy, Verdict, classify


@pytest.mark.parametrize(
    "exc, verdict",
    [
        (Permanent("http_404"), Verdict.PERMANENT),
        (Transient("HTTP 503"), Verdict.TRANSIENT),
        (httpx.ConnectTimeout("slow"), Verdict.TRANSIENT),
        # The soft time limit: retried like a timeout (a dead letter at once, before).
        (SoftTimeLimitExceeded(), Verdict.TRANSIENT),
        (ValueError("a bug"), Verdict.UNKNOWN),
    ],
)
def test_classify(exc, verdict):
    assert classify(exc) is verdict


def test_a_task_over_its_time_limit_is_retried_until_attempts_run_out():
    policy = RetryPolicy(max_attempts=3, base=1.0, cap=10.0)
    assert policy.should_retry(SoftTimeLimitExceeded(), attempts=2)
    assert not policy.should_retry(SoftTimeLimitExceeded(), attempts=3)


def test_delay_honours_retry_after_within_the_cap():
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=10.0)
    assert all(0 <= policy.delay(3) <= 4.0 for _ in range(100))
    assert policy.delay(1, Transient("429", retry_after=7.0)) >= 7.0
    assert policy.delay(1, Transient("429", retry_after=60.0)) <= 10.0
