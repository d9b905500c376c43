"""The scheduler loop: keep `feeds` in step with the feeds file, poll due feeds, record
and enqueue new URLs, resend URLs whose message was lost, and prune once a day. It never
fetches articles.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from psycopg_pool import ConnectionPool

from newsloom import db, log, metrics, queue, retention, web
from newsloom.errors import FeedsFileError
from newsloom.retry import TRANSIENT_EXCEPTIONS, feed_backoff
from newsloom.scheduler.feedsfile import FeedConfig, load_feeds
from newsloom.scheduler.poll import poll_feed
from newsloom.scheduler.timing import adapted_interval, next_poll_in
from newsloom.settings import Settings

logger = log.get_logger(__name__)

# Retention runs once a day, on one of the schedulers (maintenance_runs says when it last
# ran); each scheduler asks hourly whether it is due.
PRUNE_EVERY = 86400.0
PRUNE_CHECK_EVERY = 3600.0


class Scheduler:
    def __init__(self, settings: Settings, pool: ConnectionPool, stop: threading.Event):
        self.settings, self.pool, self.stop = settings, pool, stop
        self.celery = queue.make_app(settings)
        self.http = web.make_client(settings)
        self._feeds_mtime: tuple[int, int] | None = None
        # A claimed feed is leased for longer than its poll can take.
        self.lease = settings.fetch_timeout * 3 * (settings.max_redirects + 1) + 60
        # Lost messages are looked for often enough that none waits much past its timeout.
        self.reconcile_every = min(60.0, settings.visibility_timeout / 4)
        self.prunes = settings.raw_pages_keep is not None or settings.urls_keep is not None
        self._pruning: threading.Thread | None = None

    def run(self) -> None:
        self.sync_feeds_file()
        last_reconcile = last_prune_check = -float("inf")
        with ThreadPoolExecutor(self.settings.poll_concurrency, "poll") as executor:
            while not self.stop.is_set():
                try:
                    self.reload_feeds()
                    polled = self.poll_due(executor)
                    now = time.monotonic()
                    if now - last_reconcile >= self.reconcile_every:
                        self.reconcile()
                        last_reconcile = now
                    if self.prunes and now - last_prune_check >= PRUNE_CHECK_EVERY:
                        self.start_prune()
                        last_prune_check = now
                except TRANSIENT_EXCEPTIONS as exc:
                    # The database or the broker is away: try again next tick, keep running.
                    logger.warning("scheduler cycle failed", error=f"{type(exc).__name__}: {exc}")
                    polled = 0
                if not polled:
                    self.stop.wait(self.settings.scheduler_tick)
        if self._pruning is not None:
            self._pruning.join()  # it stops between batches once `stop` is set
        self.http.close()
        self.celery.close()

    def sync_feeds_file(self) -> None:
        """Load the feeds file into `feeds`; FeedsFileError if it is bad."""
        self.sync_feeds(load_feeds(self.settings.feeds, self.settings.default_interval))

    def sync_feeds(self, feeds: list[FeedConfig]) -> None:
        self._feeds_mtime = _mtime(self.settings.feeds)
        with self.pool.connection() as conn:
            db.sync_feeds(conn, [(f.url, f.name, max(1, round(f.interval)), f.host_delay, f.robots)
                                 for f in feeds])
        logger.info("feeds synced", feeds=len(feeds), file=str(self.settings.feeds))

    def reload_feeds(self) -> None:
        """Take edits of the feeds file; a broken edit is logged and the old list kept."""
        if _mtime(self.settings.feeds) == self._feeds_mtime:
            return
        try:
            feeds = load_feeds(self.settings.feeds, self.settings.default_interval)
        except FeedsFileError as exc:
            self._feeds_mtime = _mtime(self.settings.feeds)
            logger.error("feeds file not reloaded", error=str(exc))
            return
        self.sync_feeds(feeds)

    def poll_due(self, executor: ThreadPoolExecutor) -> int:
        with self.pool.connection() as conn:
            due = db.claim_due_feeds(conn, self.settings.poll_concurrency * 2, self.lease)
        list(executor.map(self.poll_one, due))
        return len(due)

    def poll_one(self, feed: db.FeedRow) -> None:
        interval = float(feed.interval_seconds)
        try:
            with metrics.FEED_POLL_SECONDS.time():
                result = poll_feed(self.http, feed.url, self.settings, etag=feed.etag,
                                   last_modified=feed.last_modified)
            with self.pool.connection() as conn:
                new_ids = db.record_new_urls(conn, feed.id, result.entries,
                                              self.settings.refresh_min_age)
            queue.enqueue_fetch(new_ids, self.celery)
            metrics.URLS_ENQUEUED.inc(len(new_ids))
            metrics.FEED_POLLS.labels("not_modified" if result.not_modified else "new").inc()
        except Exception as exc:  # noqa: BLE001 - a failing feed backs off, never stops the loop
            metrics.FEED_POLLS.labels("error").inc()
            error = f"{type(exc).__name__}: {exc}"
            next_in = next_poll_in(feed_backoff(interval, feed.consecutive_errors + 1),
                                   retry_after=getattr(exc, "retry_after", None))
            logger.warning("feed poll failed", feed=feed.url, error=error, retry_in=round(next_in))
            with self.pool.connection() as conn:
                db.record_poll_failure(conn, feed.id, error=error[:1000], next_in=next_in)
            return
        # A 304 says nothing of how often the feed publishes: keep the pace found before.
        poll_every = (feed.poll_every_seconds or interval if result.not_modified
                      else adapted_interval(interval, [e.published_at for e in result.entries]))
        next_in = next_poll_in(poll_every, ttl=result.ttl_seconds, max_age=result.max_age_seconds)
        with self.pool.connection() as conn:
            db.record_poll_success(conn, feed.id, etag=result.etag,
                                   last_modified=result.last_modified, poll_every=poll_every,
                                   next_in=next_in, items=len(new_ids),
                                   rejected_links=result.rejected_links)
        logger.info("feed polled", feed=feed.url, not_modified=result.not_modified,
                    entries=len(result.entries), new=len(new_ids),
                    rejected_links=result.rejected_links)

    def reconcile(self) -> None:
        """Resend URLs in flight for longer than the visibility timeout: their message is lost."""
        with self.pool.connection() as conn:
            stale = db.stale_in_flight(conn, self.settings.visibility_timeout, limit=1000)
        for row in stale:
            if row["state"] == "queued":
                queue.enqueue_fetch([row["id"]], self.celery)
            else:
                queue.enqueue_process(row["id"], self.celery)
        if stale:
            logger.warning("resent lost messages", urls=len(stale))

    def start_prune(self) -> None:
        """Prune in a thread of its own (it may take minutes), unless one is running."""
        if self._pruning is None or not self._pruning.is_alive():
            self._pruning = threading.Thread(target=self.prune_if_due, name="prune", daemon=True)
            self._pruning.start()

    def prune_if_due(self) -> retention.PruneResult | None:
        """Run the day's prune if no scheduler has yet; its own session holds the lock."""
        url = self.settings.database_url
        assert url is not None  # the scheduler runs only against servers it was given
        try:
            with db.connect(url) as conn:
                if not db.claim_maintenance(conn, "prune", PRUNE_EVERY):
                    return None
                result = retention.prune(conn, self.settings, self.stop)
        except Exception as exc:  # noqa: BLE001 - a failed prune waits for the next day
            logger.error("prune failed", error=f"{type(exc).__name__}: {exc}")
            return None
        if not result.ran:
            logger.info("prune skipped: another prune is running")
        else:
            logger.info("pruned", raw_pages=result.raw_pages, urls=result.urls,
                        page_mb=round(result.raw_page_bytes / 2**20, 1),
                        seconds=round(result.seconds, 1), interrupted=result.interrupted)
        return result


def _mtime(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
