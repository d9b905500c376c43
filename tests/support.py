"""Helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from newsloom import db
from newsloom.worker.pipeline import Context, fetch_step, process_step, settle_failure

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def redis_client_url(url: str) -> str:
    """kombu's `redis+socket://` URL as redis-py spells it."""
    return url.replace("redis+socket://", "unix://", 1)


def run_url(ctx: Context, url: str, feed_id: int | None = None) -> dict:
    """One URL through fetch and process in-process, retried as the policy says (without
    waiting), until it ends; returns its `urls` row."""
    with ctx.pool.connection() as conn:
        [url_id] = db.record_new_urls(conn, feed_id, [(url, None)])
    for step, task in ((fetch_step, "newsloom.fetch"), (process_step, "newsloom.process")):
        attempts = 1
        while True:
            try:
                step(ctx, url_id)
                break
            except Exception as exc:  # noqa: BLE001 - what the task adapter does
                if settle_failure(ctx, task, url_id, exc, attempts) is None:
                    break
                attempts += 1
    with ctx.pool.connection() as conn:
        return db.get_url(conn, url_id)
