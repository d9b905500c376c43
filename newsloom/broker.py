"""The broker without Celery: the names of the queues, and its Redis server reached
directly (the hosts' shared request timetable, newsloom.worker.politeness, lives there).
Cheap to import: the CLI reads the queue names at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

FETCH_QUEUE = "fetch"  # waits on the network: a thread pool
PROCESS_QUEUE = "process"  # burns CPU (extract, tag): a process pool
DELIVER_QUEUE = "deliver"  # webhook POSTs, waiting on consumers: a thread pool of its own


def redis_client(url: str, timeout: float | None = None) -> redis.Redis:
    """A plain Redis client for the broker's server (kombu's socket URLs included)."""
    import redis

    return redis.Redis.from_url(
        url.replace("redis+socket://", "unix://", 1),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
