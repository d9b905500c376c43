"""The scheduler loop: keep `feeds` in step with the feeds file, poll due feeds, record
and enqueue new URLs, resend URLs whose message was lost, and prune once a day. It never
fetches articles.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from newsloom import db, log, metrics, queue, retention, web
from newsloom.errors import FeedsFileError
from newsloom.retry import TRANSIENT_EXCEPTIONS, feed_backoff
from newsloom.scheduler.feedsfile import FeedConfig, load_feeds
from newsloom.scheduler.poll import SourceRules, make_rules, poll_feed
from newsloom.scheduler.timing import adapted_interval, next_poll_in
from newsloom.settings import Settings

logger = log.get_logger(__name__)
_FAILED_CYCLE_PAUSE = 2.0

# Retention runs once a day, on one of the schedulers (maintenance_runs says when it last
# ran); each scheduler asks hourly whether it is due.
PRUNE_EVERY = 86400.0
PRUNE_CHECK_EVERY = 3600.0


class Scheduler:
    def __init__(self, settings: Settings, pool: db.Pool, stop: threading.Event):
        self.settings, self.pool, self.stop = settings, pool, stop
        self.celery = queue.make_app(settings)
        self.http = web.make_client(settings)
        self._feeds_mtime: tuple[int, int] | None = None
        # A claimed feed is leased for longer than its poll can take.
        self.lease = settings.longest_request + 60
        self.reconcile_every = min(settings.reconcile_interval, settings.visibility_timeout / 4)
        # In-flight URLs that had no message in the broker at the last reconcile, and
        # messages held by no live worker at the last look for them.
        self._missing: set[int] = set()
        self._orphans: set[str] = set()
        self._last_orphan_check = 0.0
        self.prunes = settings.raw_pages_keep is not None or settings.urls_keep is not None
        self._pruning: threading.Thread | None = None

    def run(self) -> None:
        self.sync_feeds_file()
        logger.info("scheduler ready", feeds_file=str(self.settings.feeds))
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
                    self.stop.wait(_FAILED_CYCLE_PAUSE)  # one line every few seconds, not a flood
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
            db.sync_feeds(
                conn,
                [
                    (
                        f.url,
                        f.name,
                        max(1, round(f.interval)),
                        f.host_delay,
                        f.robots,
                        f.type,
                        f.include,
                        f.exclude,
                        f.since,
                    )
                    for f in feeds
                ],
            )
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
                result = poll_feed(
                    self.http,
                    feed.url,
                    self.settings,
                    rules=feed_rules(feed),
                    etag=feed.etag,
                    last_modified=feed.last_modified,
                )
            with self.pool.connection() as conn:
                new_ids = db.record_new_urls(
                    conn, feed.id, result.entries, self.settings.refresh_min_age
                )
            queue.enqueue_fetch(new_ids, self.celery)
            metrics.URLS_ENQUEUED.inc(len(new_ids))
            metrics.FEED_POLLS.labels("not_modified" if result.not_modified else "new").inc()
        except Exception as exc:  # noqa: BLE001 - a failing feed backs off, never stops the loop
            metrics.FEED_POLLS.labels("error").inc()
            error = f"{type(exc).__name__}: {exc}"
            next_in = next_poll_in(
                feed_backoff(interval, feed.consecutive_errors + 1),
                retry_after=getattr(exc, "retry_after", None),
            )
            logger.warning("feed poll failed", feed=feed.url, error=error, retry_in=round(next_in))
            with self.pool.connection() as conn:
                db.record_poll_failure(conn, feed.id, error=error[:1000], next_in=next_in)
            return
        # A 304 says nothing of how often the feed publishes: keep the pace found before.
        poll_every = (
            feed.poll_every_seconds or interval
            if result.not_modified
            else adapted_interval(interval, [e.published_at for e in result.entries])
        )
        next_in = next_poll_in(poll_every, ttl=result.ttl_seconds, max_age=result.max_age_seconds)
        with self.pool.connection() as conn:
            db.record_poll_success(
                conn,
                feed.id,
                etag=result.etag,
                last_modified=result.last_modified,
                poll_every=poll_every,
                next_in=next_in,
                items=len(new_ids),
                rejected_links=result.rejected_links,
                kind=result.kind,
                note=result.note,
                sitemaps_read_until=result.read_until,
            )
        logger.info(
            "feed polled",
            feed=feed.url,
            kind=result.kind,
            not_modified=result.not_modified,
            entries=len(result.entries),
            new=len(new_ids),
            rejected_links=result.rejected_links,
            left_out=result.note,
        )

    def reconcile(self) -> None:
        """Resend in-flight URLs whose message is lost: in no queue and held by no worker
        at two reconciles in a row (a broker restarted empty, a send that failed while it
        was away). When the broker holds too many messages to read them all, URLs
        untouched for longer than the visibility timeout are resent instead."""
        with self.pool.connection() as conn:
            untouched = db.in_flight_untouched(conn, self.settings.lost_message_after, limit=10_000)
        in_broker = queue.url_ids_in_broker(self.settings) if untouched else set()
        if in_broker is None:
            with self.pool.connection() as conn:
                resend = db.stale_in_flight(conn, self.settings.visibility_timeout, limit=1000)
        else:
            missing = {row["id"] for row in untouched} - in_broker
            # Seen missing twice: not a message between two places at the first look.
            lost = sorted(missing & self._missing)
            self._missing = missing - set(lost)
            resend = []
            if lost:
                with self.pool.connection() as conn:
                    resend = db.touch_in_flight(conn, lost)
        for row in resend:
            queue.enqueue_in_flight(row["id"], row["state"], self.celery)
        if resend:
            logger.warning("resent lost messages", urls=len(resend))
        self.restore_orphans()

    def restore_orphans(self) -> None:
        """Give back messages taken by workers that are gone (killed on another machine, or
        whose reservations a broker restarted from its append-only file still lists), when
        two looks a while apart agree. Asking the workers takes a few seconds: it is done
        once every NEWSLOOM_LOST_MESSAGE_AFTER."""
        now = time.monotonic()
        if now - self._last_orphan_check < self.settings.lost_message_after:
            return
        self._last_orphan_check = now
        orphans = queue.orphaned_tags(
            self.celery, self.settings, taken_before=time.time() - self.settings.lost_message_after
        )
        if orphans is None:
            return
        again, self._orphans = orphans & self._orphans, orphans
        if again:
            restored = queue.restore_tags(self.celery, again)
            self._orphans -= again
            logger.warning("gave back messages of workers that are gone", messages=restored)

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
            logger.info(
                "pruned",
                raw_pages=result.raw_pages,
                urls=result.urls,
                page_mb=round(result.raw_page_bytes / 2**20, 1),
                seconds=round(result.seconds, 1),
                interrupted=result.interrupted,
            )
        return result


def feed_rules(feed: db.FeedRow) -> SourceRules:
    return make_rules(
        feed.source_type,
        feed.include_pattern,
        feed.exclude_pattern,
        feed.since_seconds,
        first_polled_at=feed.first_polled_at,
        read_until=feed.sitemaps_read_until,
    )


def _mtime(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
