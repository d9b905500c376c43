"""Celery tasks: adapt the pipeline steps to the queues and apply the retry policy."""

from __future__ import annotations

import warnings
from functools import partial

import redis
from celery import Task
from celery.exceptions import CPendingDeprecationWarning, SecurityWarning
from celery.signals import setup_logging, worker_init, worker_ready
from kombu.transport import redis as kombu_redis
from structlog.contextvars import bind_contextvars, clear_contextvars

from newsloom import log
from newsloom.errors import Deferred
from newsloom.queue import (
    DELIVER_TASK,
    FETCH_TASK,
    PROCESS_TASK,
    app,
    enqueue_process,
    requeue_fetch,
)
from newsloom.settings import get_settings
from newsloom.worker.deliver import deliver_step
from newsloom.worker.pipeline import Context, fetch_step, process_step, settle_failure

logger = log.get_logger(__name__)
# Celery's multi-line "running as root" warning, once per worker and restart: the
# supervisor says it once instead.
warnings.filterwarnings("ignore", category=SecurityWarning)
# Six lines at every broker outage announcing a default we set on purpose
# (worker_cancel_long_running_tasks_on_connection_loss, see newsloom.queue).
warnings.filterwarnings(
    "ignore",
    message=r"\s*In Celery 5.1 we introduced an optional breaking",
    category=CPendingDeprecationWarning,
)
_ctx: Context | None = None


def _closed_channel_is_a_connection_error() -> None:
    """Work around celery#9250 (the same failure with kombu's Redis transport): on a lost
    broker connection Celery closes the connection after kombu has let go of the
    transport; what still uses a channel of it then (closing the channel gives back its
    unacknowledged messages; a task finishing acknowledges its message) builds a new
    connection pool from the transport that is gone, and AttributeError ("'NoneType'
    object has no attribute 'hostname'" / "'client'") ends the worker as an
    "Unrecoverable error". Raise a connection error instead, which kombu and Celery
    expect there and pass over: the messages stay in kombu's `unacked` hash, and if the
    broker kept its data the scheduler gives back those no live worker holds
    (newsloom.queue.orphaned_tags)."""
    connparams = kombu_redis.Channel._connparams

    def connparams_unless_closed(self: kombu_redis.Channel, asynchronous: bool = False) -> dict:
        if getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("this channel's broker connection is closed")
        return connparams(self, asynchronous)

    # setattr: assigning to a method is what a type checker would refuse.
    setattr(kombu_redis.Channel, "_connparams", connparams_unless_closed)  # noqa: B010


_closed_channel_is_a_connection_error()


def context() -> Context:
    global _ctx
    if _ctx is None:
        _ctx = Context(get_settings())
    return _ctx


@setup_logging.connect
def _logging(**_: object) -> None:
    """Celery's own records go through newsloom's log format too."""
    log.configure(context().settings)


@worker_ready.connect
def _ready(sender: object, **_: object) -> None:
    """The one line a worker prints when it takes work (its banner is off: --quiet)."""
    logger.info("worker ready", node=getattr(sender, "hostname", None))


@worker_init.connect
def _load_models(**_: object) -> None:
    """Load the models in the worker's main process, before its pool forks: the children
    share them (copy on write) instead of each loading its own, and a child restarted
    after a crash takes work at once. A model that cannot load stops the worker here."""
    if "process" in app.amqp.queues:
        context().models.load_all()


# max_retries=None: newsloom.retry decides when to stop, not Celery's default of 3.
@app.task(name=FETCH_TASK, bind=True, max_retries=None)
def fetch(self: Task, url_id: int, not_before: float | None = None) -> None:
    try:
        fetched = _run(self, url_id, partial(fetch_step, not_before=not_before))
    except Deferred as deferred:  # the host's turn comes later: no worker waits for it
        requeue_fetch(url_id, deferred.not_before, context().settings.visibility_timeout / 2)
        return
    if fetched:
        enqueue_process(url_id)


@app.task(name=PROCESS_TASK, bind=True, max_retries=None)
def process(self: Task, url_id: int) -> None:
    outcome = _run(self, url_id, process_step)
    if outcome:
        logger.info("article", outcome=outcome, url_id=url_id)


# Retries and dead letters of deliveries are settled per endpoint in Postgres (see
# newsloom.worker.deliver). The message is acknowledged on receipt: a delivery lost with
# it (a worker or broker gone) is sent again by the dispatcher when its lease runs out,
# and no unacknowledged deliveries are left for a reconnecting worker to restore.
@app.task(name=DELIVER_TASK, bind=True, max_retries=0, acks_late=False)
def deliver(self: Task, webhook_id: int, lease_token: str) -> None:
    clear_contextvars()
    bind_contextvars(task=self.name, task_id=self.request.id, webhook_id=webhook_id)
    deliver_step(context(), webhook_id, lease_token)


def _run(task: Task, url_id: int, step):
    """Run a step; a failure ends the URL, is retried later, or is dead-lettered."""
    ctx = context()
    # Every log line of this task names it and its URL (the step binds url and feed).
    clear_contextvars()
    bind_contextvars(task=task.name, task_id=task.request.id, url_id=url_id)
    try:
        return step(ctx, url_id)
    except Deferred:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure gets an outcome
        delay = settle_failure(ctx, task.name, url_id, exc)
        if delay is not None:
            raise task.retry(countdown=delay, exc=exc) from None
        return None
