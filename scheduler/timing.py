"""When to poll a feed next: its interval adapted to how often it publishes, never
sooner than the feed or its server asks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

ADAPT_FACTOR = 4  # an adapted interval stays within [interval / 4, interval * 4]
RECENT_ENTRIES = 20


def publishing_gap(dates: Sequence[datetime | None]) -> float | None:
    """Mean seconds between the newest entries' dates, None with fewer than two."""
    known = sorted((d for d in dates if d is not None), reverse=True)[:RECENT_ENTRIES]
    if len(known) < 2:
        return None
    return (known[0] - known[-1]).total_seconds() / (len(known) - 1)


def adapted_interval(interval: float, dates: Sequence[datetime | None]) -> float:
    """Busy feeds more often, quiet ones less, within bounds of the configured interval."""
    gap = publishing_gap(dates)
    if gap is None:
        return interval
    return min(interval * ADAPT_FACTOR, max(interval / ADAPT_FACTOR, gap))


def next_poll_in(
    poll_every: float,
    *,
    ttl: float | None = None,
    max_age: float | None = None,
    retry_after: float | None = None,
) -> float:
    """Seconds until the next poll: the adapted interval, or longer if the feed's <ttl>,
    its Cache-Control max-age or a Retry-After ask for it."""
    return max(poll_every, ttl or 0, max_age or 0, retry_after or 0)
