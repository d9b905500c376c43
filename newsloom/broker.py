"""The broker's Redis server reached directly, not through Celery: the hosts' shared
request timetable (newsloom.worker.politeness) lives there too."""

from __future__ import annotations

import redis


def redis_client(url: str) -> redis.Redis:
    """A plain Redis client for the broker's server (kombu's socket URLs included)."""
    return redis.Redis.from_url(url.replace("redis+socket://", "unix://", 1))
