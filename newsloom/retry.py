"""The retry policy: what is retried, how long to wait, when to give up.

Transient errors are retried with exponential backoff and full jitter, capped, honouring
`Retry-After`; permanent ones end the URL at once; anything unclassified goes to the
dead-letter queue so that a person looks at it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

import httpx
import psycopg
import redis.exceptions
from billiard.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError

from newsloom.errors import Permanent, Transient
from newsloom.settings import Settings

FEED_BACKOFF_CAP = 24 * 3600.0

# Failures of the network or of our own services: worth another try later.
TRANSIENT_EXCEPTIONS = (
    Transient,
    httpx.TransportError,
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BrokerError,
    # A task over its time limit (a busy machine, a slow page) may finish on another try;
    # one that never does runs out of attempts like any other.
    SoftTimeLimitExceeded,
)


class Verdict(Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, Permanent):
        return Verdict.PERMANENT
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return Verdict.TRANSIENT
    return Verdict.UNKNOWN


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base: float
    cap: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_attempts, settings.retry_base, settings.retry_cap)

    def should_retry(self, exc: BaseException, attempts: int) -> bool:
        """`attempts` counts the one that just failed."""
        return classify(exc) is Verdict.TRANSIENT and attempts < self.max_attempts

    def delay(self, attempts: int, exc: BaseException | None = None) -> float:
        """Seconds before the next try: full jitter over an exponential ceiling."""
        ceiling = min(self.cap, self.base * 2 ** (attempts - 1))
        wait = random.uniform(0, ceiling)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, min(retry_after, self.cap))
        return wait


def feed_backoff(interval: float, consecutive_errors: int) -> float:
    """Seconds until a failing feed is polled again: doubles per error, capped at a day."""
    ceiling = min(FEED_BACKOFF_CAP, interval * 2 ** min(consecutive_errors, 20))
    return random.uniform(ceiling / 2, ceiling)
