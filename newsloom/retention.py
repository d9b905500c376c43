"""Retention: remove kept pages and finished ledger rows older than the settings say.

`newsloom prune` and the scheduler's daily prune both run `prune`. It works in batches of
BATCH rows, each a transaction of its own that locks only the rows it deletes (and a
page's ledger row, to see its current state), skipping any the pipeline holds, so the
pipeline is never locked out; a session advisory lock keeps two prunes from running at once.

What stays, whatever the settings: pages and ledger rows of URLs in flight or with an open
dead letter, and the ledger row of a kept page that holds an article's text. `articles`,
`article_urls` (which URLs were seen: the scheduler checks it, so a pruned URL is not
fetched again) and the near-duplicate keys are never pruned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from newsloom import db, log
from newsloom.settings import Settings

logger = log.get_logger(__name__)

BATCH = 1000


@dataclass
class PruneResult:
    raw_pages: int = 0
    raw_page_bytes: int = 0  # compressed bytes of the pages removed (with their rows too)
    urls: int = 0
    seconds: float = 0.0
    ran: bool = True  # False: another prune holds the lock
    interrupted: bool = False


def prune(
    conn: db.Connection, settings: Settings, stop: threading.Event | None = None, batch: int = BATCH
) -> PruneResult:
    """Prune pages, then ledger rows (a page removed first can free its row in the same
    run). `conn` must be this prune's own session: it holds the lock."""
    result = PruneResult()
    if not db.try_lock_prune(conn):
        result.ran = False
        return result
    start = time.monotonic()
    pages_keep, urls_keep = settings.raw_pages_keep, settings.urls_keep
    try:
        if pages_keep is not None:
            result.interrupted = _in_batches(
                partial(db.prune_raw_pages, conn, pages_keep, limit=batch),
                result,
                "raw_pages",
                batch,
                stop,
            )
        if urls_keep is not None and not result.interrupted:
            result.interrupted = _in_batches(
                partial(db.prune_urls, conn, urls_keep, limit=batch), result, "urls", batch, stop
            )
    finally:
        db.unlock_prune(conn)
    result.seconds = time.monotonic() - start
    return result


def _in_batches(
    delete: Callable[[tuple], db.PruneBatch],
    result: PruneResult,
    what: str,
    batch: int,
    stop: threading.Event | None,
) -> bool:
    """Run `delete` batch after batch until one comes back short; True if stopped first."""
    after: tuple = db.PRUNE_START
    while True:
        if stop is not None and stop.is_set():
            return True
        done = delete(after)
        setattr(result, what, getattr(result, what) + done.rows)
        result.raw_page_bytes += done.page_bytes
        after = done.last
        if done.rows:
            logger.debug("pruned", table=what, rows=done.rows)
        if done.rows < batch:
            return False
