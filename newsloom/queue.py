"""The Celery app: broker settings, queues, and how work is sent to them.

Whoever sends work (the scheduler, `dlq replay`, the fetch task handing a page on) uses
the functions here; the task bodies are registered by newsloom.worker.tasks, which only
the workers load. Queue names live in newsloom.broker, which needs no Celery.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from typing import cast

from celery import Celery
from kombu.transport.redis import PRIORITY_STEPS, Channel

from newsloom.broker import DELIVER_QUEUE, FETCH_QUEUE, PROCESS_QUEUE, redis_client
from newsloom.db import UrlState
from newsloom.settings import Settings, get_settings

FETCH_TASK = "newsloom.fetch"
PROCESS_TASK = "newsloom.process"
DELIVER_TASK = "newsloom.deliver"

# The workers' app, configured from the environment when first used.
app = Celery("newsloom", set_as_current=True)


@app.on_configure.connect
def _configure(sender: Celery, **_: object) -> None:
    sender.conf.update(celery_config(get_settings()))


def make_app(settings: Settings) -> Celery:
    """An app bound to these settings, for sending and asking the broker (the scheduler,
    the CLI's status, health and dlq replay, the metrics' queue depths); close it after."""
    sender = Celery("newsloom", set_as_current=False)
    sender.conf.update(celery_config(settings))
    return sender


def celery_config(settings: Settings) -> dict:
    return dict(
        # Required: Celery would otherwise fall back to amqp://localhost without a word.
        broker_url=settings.require_redis_url(),
        broker_connection_retry_on_startup=True,
        # At least once: a message is acknowledged after its task ran, and comes back when
        # the worker dies mid-task or does not acknowledge within the visibility timeout.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "global_keyprefix": settings.redis_key_prefix,
        },
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=settings.task_time_limit * 0.9,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_routes={
            FETCH_TASK: {"queue": FETCH_QUEUE},
            PROCESS_TASK: {"queue": PROCESS_QUEUE},
            DELIVER_TASK: {"queue": DELIVER_QUEUE},
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # A broker outage never ends a worker: it reconnects for as long as it takes
        # (Celery's default gives up after 100 attempts and the worker exits).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # Tasks in hand run to the end through an outage; their writes are idempotent and
        # what they send is retried (below). Cancelling them is no help with Redis: their
        # messages come back only after the visibility timeout, and the thread pool cannot
        # cancel at all (celery#9250: with cancelling on, a reconnection while fetches run
        # ended the fetch worker). What an outage loses, the scheduler's reconciler resends.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A send while the broker is away waits for it up to about two minutes, then
        # fails; the URL stays in flight in Postgres and is resent by the reconciler.
        task_publish_retry_policy={
            "max_retries": 30,
            "interval_start": 0,
            "interval_step": 1,
            "interval_max": 5,
        },
    )


def enqueue_fetch(url_ids: Iterable[int], celery: Celery = app) -> None:
    for url_id in url_ids:
        celery.send_task(FETCH_TASK, args=[url_id], queue=FETCH_QUEUE)


def requeue_fetch(url_id: int, not_before: float, max_delay: float, celery: Celery = app) -> None:
    """Send a fetch again for `not_before` (epoch seconds). A message never waits longer
    than `max_delay` (below the visibility timeout); an early one defers itself again."""
    countdown = min(max(0.0, not_before - time.time()), max_delay)
    celery.send_task(
        FETCH_TASK,
        args=[url_id],
        kwargs={"not_before": not_before},
        queue=FETCH_QUEUE,
        countdown=countdown,
    )


def enqueue_process(url_id: int, celery: Celery = app) -> None:
    celery.send_task(PROCESS_TASK, args=[url_id], queue=PROCESS_QUEUE)


def enqueue_deliver(webhook_id: int, lease_token: str, celery: Celery = app) -> None:
    """Deliver an endpoint's pending events; `lease_token` proves this is its one delivery."""
    celery.send_task(DELIVER_TASK, args=[webhook_id, lease_token], queue=DELIVER_QUEUE)


def enqueue_in_flight(url_id: int, state: UrlState, celery: Celery = app) -> None:
    """Send a URL in flight to the step its state waits for: a kept page to processing,
    anything else to fetching."""
    if state == UrlState.FETCHED:
        enqueue_process(url_id, celery)
    else:
        enqueue_fetch([url_id], celery)


def enqueue_process_many(url_ids: Iterable[int], celery: Celery = app) -> None:
    """Many process messages through one producer (an import sends thousands)."""
    with celery.producer_or_acquire() as producer:
        for url_id in url_ids:
            celery.send_task(PROCESS_TASK, args=[url_id], queue=PROCESS_QUEUE, producer=producer)


def queue_depths(celery: Celery) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker holds)."""
    with celery.connection_for_read() as conn:
        channel = conn.default_channel
        # Declaring is idempotent and, unlike a passive declare, works before any worker ran.
        return {
            name: channel.queue_declare(name).message_count
            for name in (FETCH_QUEUE, PROCESS_QUEUE, DELIVER_QUEUE)
        }


def workers_alive(celery: Celery, timeout: float = 0.5) -> list[str]:
    """Names of the workers that answer a ping. kombu waits `timeout` for each next reply,
    so the call always takes at least that long (and is the bulk of `status`); workers on a
    reachable broker answer within milliseconds."""
    return sorted(name for reply in celery.control.ping(timeout=timeout) for name in reply)


# --- messages of the Redis transport (kombu keeps a message a worker took, until it is
# acknowledged, in the `unacked` hash by delivery tag, with the time taken in the
# `unacked_index` sorted set; waiting messages are in one list per queue and priority).

_UNACKED, _UNACKED_INDEX = Channel.unacked_key, Channel.unacked_index_key


def _queue_keys(prefix: str) -> list[str]:
    return [
        f"{prefix}{name}{Channel.sep}{step}" if step else f"{prefix}{name}"
        for name in (FETCH_QUEUE, PROCESS_QUEUE)
        for step in PRIORITY_STEPS
    ]


def _url_id(raw_message: dict) -> int | None:
    """The URL id a newsloom task message carries (its first argument)."""
    body = raw_message.get("body", "")
    if raw_message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    try:
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def url_ids_in_broker(settings: Settings, max_messages: int = 100_000) -> set[int] | None:
    """URL ids of every message waiting in a queue or held by a worker, read in one
    transaction; None when there are more than `max_messages` (too costly to read)."""
    client = redis_client(settings.redis_url or "")
    prefix = settings.redis_key_prefix
    try:
        with client.pipeline(transaction=True) as pipe:
            for key in _queue_keys(prefix):
                pipe.llen(key)
            pipe.hlen(prefix + _UNACKED)
            if sum(pipe.execute()) > max_messages:
                return None
            for key in _queue_keys(prefix):
                pipe.lrange(key, 0, -1)
            pipe.hvals(prefix + _UNACKED)
            *waiting, held = pipe.execute()
    finally:
        client.close()
    raw_messages = [json.loads(m) for messages in waiting for m in messages]
    raw_messages += [json.loads(entry)[0] for entry in held]
    return {url_id for url_id in map(_url_id, raw_messages) if url_id is not None}


def held_task_ids(celery: Celery, timeout: float = 1.0) -> set[str] | None:
    """Ids of the tasks every live worker holds (running, reserved, or waiting for their
    countdown); None unless every worker that answers the first question answered all."""
    inspect = celery.control.inspect(timeout=timeout)
    active = inspect.active() or {}
    alive, held = set(active), set[str]()
    for replies in (active, inspect.reserved(), inspect.scheduled()):
        if alive and (replies is None or not alive <= set(replies)):
            return None
        for requests in (replies or {}).values():
            held.update(r.get("request", r)["id"] for r in requests)
    return held


def orphaned_tags(celery: Celery, settings: Settings, taken_before: float) -> set[str] | None:
    """Delivery tags of the messages taken before `taken_before` (epoch seconds) by
    workers that are gone: in kombu's `unacked` hash, yet held by no live worker. None
    when a live worker did not answer (it could hold some of them)."""
    client = redis_client(settings.redis_url or "")
    prefix = settings.redis_key_prefix
    try:
        if not client.zcount(prefix + _UNACKED_INDEX, 0, taken_before):
            return set()  # nothing old enough: no need to ask the workers
        held = held_task_ids(celery)
        if held is None:
            return None
        entries = client.hgetall(prefix + _UNACKED)
        taken_at: dict[bytes, float] = dict(
            cast(
                "list[tuple[bytes, float]]",
                client.zrange(prefix + _UNACKED_INDEX, 0, -1, withscores=True),
            )
        )
    finally:
        client.close()
    return {
        tag.decode()
        for tag, entry in cast("dict[bytes, bytes]", entries).items()
        if taken_at.get(tag, 0.0) <= taken_before
        and json.loads(entry)[0].get("headers", {}).get("id") not in held
    }


def restore_tags(celery: Celery, tags: Iterable[str]) -> int:
    """Put the messages of these delivery tags back at the head of their queues (those
    acknowledged meanwhile are gone from the hash, and skipped)."""
    count = 0
    with celery.connection_for_write() as conn:
        qos = conn.default_channel.qos
        for tag in tags:
            qos.restore_by_tag(tag)
            count += 1
    return count


def restore_orphans(celery: Celery, settings: Settings, taken_before: float) -> int | None:
    """Give back the messages of workers that are gone (see orphaned_tags); how many, or
    None when a live worker did not answer and nothing was restored."""
    tags = orphaned_tags(celery, settings, taken_before)
    return None if tags is None else restore_tags(celery, tags)
