"""Celery tasks: adapt the pipeline steps to the queues and apply the retry policy."""

from __future__ import annotations

import traceback

from celery import Task
from celery.signals import setup_logging, worker_process_init
from structlog.contextvars import bound_contextvars

from newsloom import db, log
from newsloom.queue import FETCH_TASK, PROCESS_TASK, app, enqueue_process
from newsloom.retry import RetryPolicy, Verdict, classify
from newsloom.settings import get_settings
from newsloom.worker.pipeline import Context, fetch_step, process_step

logger = log.get_logger(__name__)
_ctx: Context | None = None


def context() -> Context:
    global _ctx
    if _ctx is None:
        _ctx = Context(get_settings())
    return _ctx


@setup_logging.connect
def _logging(**_: object) -> None:
    """Celery's own records go through newsloom's log format too."""
    log.configure(context().settings)


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Load the model in each process pool child before its first task."""
    if "process" in app.amqp.queues:
        context().nlp  # noqa: B018 - loads and caches


@app.task(name=FETCH_TASK, bind=True)
def fetch(self: Task, url_id: int) -> None:
    if _run(self, url_id, fetch_step):
        enqueue_process(url_id)


@app.task(name=PROCESS_TASK, bind=True)
def process(self: Task, url_id: int) -> None:
    outcome = _run(self, url_id, process_step)
    if outcome:
        logger.info("article", outcome=outcome, url_id=url_id)


def _run(task: Task, url_id: int, step):
    """Run a step; on failure, end the URL, retry later, or dead-letter it."""
    ctx = context()
    attempts = task.request.retries + 1
    with bound_contextvars(task=task.name, task_id=task.request.id, url_id=url_id):
        try:
            return step(ctx, url_id)
        except Exception as exc:  # noqa: BLE001 - every failure gets an outcome
            verdict = classify(exc)
            policy = RetryPolicy.from_settings(ctx.settings)
            if verdict is Verdict.PERMANENT:
                logger.info("skipped", reason=exc.reason, detail=exc.detail)
                with ctx.pool.connection() as conn:
                    db.finish_url(conn, url_id, "skipped", reason=str(exc)[:500])
                return None
            if policy.should_retry(exc, attempts):
                delay = policy.delay(attempts, exc)
                logger.warning("retrying", error=f"{type(exc).__name__}: {exc}",
                               attempt=attempts, delay=round(delay, 1))
                with ctx.pool.connection() as conn:
                    db.count_attempt(conn, url_id)
                raise task.retry(countdown=delay, exc=exc) from None
            logger.error("dead-lettered", error=f"{type(exc).__name__}: {exc}", attempts=attempts)
            with ctx.pool.connection() as conn:
                db.add_dead_letter(conn, task=task.name, payload={"url_id": url_id},
                                   url_id=url_id, error=f"{type(exc).__name__}: {exc}",
                                   traceback=traceback.format_exc(), attempts=attempts)
            return None
