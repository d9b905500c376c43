"""The Celery app: broker settings, queues, and how work is sent to them.

The scheduler imports only this module to enqueue; the task bodies are registered by
newsloom.worker.tasks, which the workers load.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis
from celery import Celery

from newsloom.errors import SettingsError
from newsloom.settings import Settings, get_settings

FETCH_QUEUE = "fetch"      # waits on the network: a thread pool
PROCESS_QUEUE = "process"  # burns CPU (extract, tag): a process pool
FETCH_TASK = "newsloom.fetch"
PROCESS_TASK = "newsloom.process"

# The workers' app, configured from the environment when first used.
app = Celery("newsloom", set_as_current=True)


@app.on_configure.connect
def _configure(sender: Celery, **_: object) -> None:
    sender.conf.update(celery_config(get_settings()))


def make_app(settings: Settings) -> Celery:
    """An app for sending only, bound to these settings (the scheduler's)."""
    sender = Celery("newsloom", set_as_current=False)
    sender.conf.update(celery_config(settings))
    return sender


def celery_config(settings: Settings) -> dict:
    if not settings.redis_url:
        # Celery would otherwise fall back to amqp://localhost without a word.
        raise SettingsError("REDIS_URL is not set")
    return dict(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        # At least once: a message is acknowledged after its task ran, and comes back when
        # the worker dies mid-task or does not acknowledge within the visibility timeout.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                                  "global_keyprefix": settings.redis_key_prefix},
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=settings.task_time_limit * 0.9,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_routes={FETCH_TASK: {"queue": FETCH_QUEUE}, PROCESS_TASK: {"queue": PROCESS_QUEUE}},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )


def enqueue_fetch(url_ids: Iterable[int], celery: Celery = app) -> None:
    for url_id in url_ids:
        celery.send_task(FETCH_TASK, args=[url_id], queue=FETCH_QUEUE)


def requeue_fetch(url_id: int, not_before: float, max_delay: float, celery: Celery = app) -> None:
    """Send a fetch again for `not_before` (epoch seconds). A message never waits longer
    than `max_delay` (below the visibility timeout); an early one defers itself again."""
    countdown = min(max(0.0, not_before - time.time()), max_delay)
    celery.send_task(FETCH_TASK, args=[url_id], kwargs={"not_before": not_before},
                     queue=FETCH_QUEUE, countdown=countdown)


def enqueue_process(url_id: int, celery: Celery = app) -> None:
    celery.send_task(PROCESS_TASK, args=[url_id], queue=PROCESS_QUEUE)


def enqueue_process_many(url_ids: Iterable[int], celery: Celery = app) -> None:
    """Many process messages through one producer (an import sends thousands)."""
    with celery.producer_or_acquire() as producer:
        for url_id in url_ids:
            celery.send_task(PROCESS_TASK, args=[url_id], queue=PROCESS_QUEUE,
                             producer=producer)


def queue_depths(celery: Celery) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker holds)."""
    with celery.connection_for_read() as conn:
        channel = conn.default_channel
        # Declaring is idempotent and, unlike a passive declare, works before any worker ran.
        return {name: channel.queue_declare(name).message_count
                for name in (FETCH_QUEUE, PROCESS_QUEUE)}


def redis_client(url: str) -> redis.Redis:
    """A plain Redis client for the broker's server (kombu's socket URLs included)."""
    return redis.Redis.from_url(url.replace("redis+socket://", "unix://", 1))


def workers_alive(celery: Celery, timeout: float = 1.0) -> list[str]:
    """Names of the workers that answer a ping within `timeout`."""
    return sorted(name for reply in celery.control.ping(timeout=timeout) for name in reply)
