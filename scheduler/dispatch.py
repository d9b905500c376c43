"""The webhook dispatcher: keeps `webhooks` in step with the feeds file and sends one
delivery task per endpoint that has events waiting and none in flight.

It wakes on `NOTIFY newsloom_events` (sent when a change commits), and once a second
regardless, for retries that come due and leases that ran out (a lost message). It only
reads and leases rows; the POSTs happen on the deliver queue, so collection never waits
on a consumer.
"""

from __future__ import annotations

import threading

from newsloom import db, log, queue
from newsloom.errors import FeedsFileError
from newsloom.retry import TRANSIENT_EXCEPTIONS
from newsloom.scheduler.feedsfile import load_webhooks
from newsloom.scheduler.service import _mtime
from newsloom.settings import Settings
from newsloom.worker.deliver import lease_seconds

logger = log.get_logger(__name__)
TICK = 1.0


class Dispatcher:
    def __init__(self, settings: Settings, pool: db.Pool, stop: threading.Event):
        self.settings, self.pool, self.stop = settings, pool, stop
        self.celery = queue.make_app(settings)
        self._file_mtime: tuple[int, int] | None = None
        self.lease = lease_seconds(settings)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with db.connect(self.settings.require_database_url()) as listener:
                    listener.execute(f"LISTEN {db.EVENTS_CHANNEL}")
                    while not self.stop.is_set():
                        self.reload_webhooks()
                        self.dispatch()
                        # Any number of notifications, or a second: then look again.
                        for _ in listener.notifies(timeout=TICK, stop_after=1):
                            pass
            except TRANSIENT_EXCEPTIONS as exc:  # the database or the broker is away
                logger.warning("dispatcher cycle failed", error=f"{type(exc).__name__}: {exc}")
                self.stop.wait(TICK * 5)
            except Exception:
                logger.exception("dispatcher cycle failed")
                self.stop.wait(TICK * 5)
        self.celery.close()

    def reload_webhooks(self) -> None:
        """Take edits of the feeds file's [[webhook]] tables; a broken edit is logged and
        the endpoints stay as they were."""
        mtime = _mtime(self.settings.feeds)
        if mtime == self._file_mtime:
            return
        self._file_mtime = mtime
        try:
            webhooks = load_webhooks(self.settings.feeds)
        except FeedsFileError as exc:
            logger.error("webhooks not reloaded", error=str(exc))
            return
        with self.pool.connection() as conn:
            db.sync_webhooks(
                conn,
                [(w.url, w.secret, w.events, w.feeds, w.languages, w.entities) for w in webhooks],
            )
        logger.info("webhooks synced", webhooks=len(webhooks))

    def dispatch(self) -> int:
        """Lease each endpoint due for a delivery and send its task; returns how many."""
        with self.pool.connection() as conn:
            due = db.claim_due_webhooks(conn, self.lease)
        for row in due:
            # Leased first: a message lost now is sent again when the lease runs out.
            queue.enqueue_deliver(row["id"], row["lease_token"], self.celery)
        return len(due)
