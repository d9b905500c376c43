"""Webhook delivery, as plain functions (no Celery).

An endpoint has one delivery in flight at a time (a lease in Postgres, given by the
dispatcher), which sends its events in order, one POST each, signed:

    X-Newsloom-Timestamp: <unix seconds>
    X-Newsloom-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

An event leaves the endpoint's queue when the endpoint answers 2xx (its cursor moves on)
or when it is dead-lettered after the last attempt; a failed try is tried again after the
retry policy's delay, with the lease released, so a slow or dead endpoint holds up no one
else. 410 Gone disables the endpoint. At least once: a worker dying mid-POST leaves the
cursor where it was, and the event is sent again when the lease runs out.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import traceback
from typing import TYPE_CHECKING

from newsloom import db, log, metrics, web
from newsloom.errors import Permanent
from newsloom.export import article_document, to_json
from newsloom.retry import RetryPolicy, Verdict, classify
from newsloom.settings import Settings

if TYPE_CHECKING:  # the dispatcher imports this module without the pipeline's libraries
    from newsloom.worker.pipeline import Context

logger = log.get_logger(__name__)

# A delivery hands its endpoint back after this long, so other endpoints get threads too.
BATCH_SECONDS = 5.0


def lease_seconds(settings: Settings) -> float:
    """How long an endpoint stays with one delivery without news from it: longer than a
    POST can take, short enough that a lost message delays the endpoint little."""
    return settings.webhook_timeout * 2 + BATCH_SECONDS + 30


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Newsloom-Signature value for this body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def payload(delivery: dict) -> bytes:
    """The body: the article document (as exports write it) with the event that caused it."""
    document = article_document(delivery)
    document["event"] = {
        "id": delivery["event_id"],
        "kind": delivery["kind"],
        "created_at": delivery["event_created_at"],
    }
    return to_json(document).encode()


def deliver_step(ctx: Context, webhook_id: int, lease_token: str) -> int:
    """Send the endpoint's pending events in order while this delivery holds its lease,
    for up to BATCH_SECONDS; returns how many it received. Never raises for what the
    endpoint does: each failure is scheduled again, dead-lettered, or disables it."""
    deadline = time.monotonic() + BATCH_SECONDS
    delivered = 0
    while time.monotonic() < deadline:
        with ctx.pool.connection() as conn:
            webhook = db.renew_webhook_lease(
                conn, webhook_id, lease_token, lease_seconds(ctx.settings)
            )
            if webhook is None:  # another delivery holds it now, or it was disabled
                return delivered
            delivery = db.next_delivery(conn, webhook)
        if delivery is None:
            break
        if not _send(ctx, webhook, delivery):
            return delivered  # released, disabled or scheduled again
        delivered += 1
    with ctx.pool.connection() as conn:
        db.release_webhook(conn, webhook_id, lease_token)
    return delivered


def _send(ctx: Context, webhook: dict, delivery: dict) -> bool:
    """POST one event; True when the endpoint received it and the next may follow."""
    body = payload(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Newsloom-Event": delivery["kind"],
        "X-Newsloom-Delivery": str(delivery["event_id"]),
        "X-Newsloom-Timestamp": str(timestamp),
        "X-Newsloom-Signature": sign(webhook["secret"], timestamp, body),
    }
    try:
        web.post(
            ctx.http,
            webhook["url"],
            ctx.settings,
            body=body,
            headers=headers,
            timeout=ctx.settings.webhook_timeout,
        )
    except Exception as exc:  # noqa: BLE001 - every failure has a consequence below
        _settle(ctx, webhook, delivery, exc)
        return False
    with ctx.pool.connection() as conn:
        db.record_delivery(conn, webhook, delivery)
    metrics.WEBHOOK_POSTS.labels("delivered").inc()
    metrics.WEBHOOK_LATENCY.observe(time.time() - delivery["event_created_at"].timestamp())
    logger.info(
        "delivered",
        webhook=webhook["url"],
        event_id=delivery["event_id"],
        kind=delivery["kind"],
        article_id=delivery["id"],
    )
    return True


def _settle(ctx: Context, webhook: dict, delivery: dict, exc: Exception) -> None:
    """A failed POST: 410 disables the endpoint; a transient failure with attempts left
    is tried again later; anything else is a dead letter and the endpoint moves on."""
    error = f"{type(exc).__name__}: {exc}"
    policy = RetryPolicy.from_settings(ctx.settings)
    with ctx.pool.connection() as conn:
        if isinstance(exc, Permanent) and exc.reason == "http_410":
            logger.warning("webhook disabled", webhook=webhook["url"], reason="410 Gone")
            db.disable_webhook(conn, webhook, "the endpoint answered 410 Gone")
            metrics.WEBHOOK_POSTS.labels("disabled").inc()
            return
        attempts = webhook["attempts"] + 1
        if classify(exc) is Verdict.TRANSIENT and policy.should_retry(exc, attempts):
            delay = policy.delay(attempts, exc)
            logger.warning(
                "delivery failed, retrying",
                webhook=webhook["url"],
                error=error,
                event_id=delivery["event_id"],
                attempt=attempts,
                delay=round(delay, 1),
            )
            db.record_delivery_failure(conn, webhook, error[:1000], delay)
            metrics.WEBHOOK_POSTS.labels("retrying").inc()
            return
        logger.error(
            "delivery dead-lettered",
            webhook=webhook["url"],
            error=error,
            event_id=delivery["event_id"],
            attempts=attempts,
        )
        db.dead_letter_delivery(
            conn,
            webhook,
            delivery,
            error_class=type(exc).__name__,
            error=error,
            traceback="".join(traceback.format_exception(exc)),
            attempts=attempts,
        )
        db.release_webhook(conn, webhook["id"], webhook["lease_token"])
    metrics.WEBHOOK_POSTS.labels("dead_lettered").inc()
