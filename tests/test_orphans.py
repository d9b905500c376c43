"""Work held by a worker that died comes back at once, not after the visibility timeout;
work held by a live worker stays with it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from support import wait_until

from newsloom import broker, db, queue
from newsloom.scheduler.service import Scheduler


def unacked(settings) -> dict:
    client = broker.redis_client(settings.redis_url)
    try:
        return client.hgetall(settings.redis_key_prefix + "unacked")
    finally:
        client.close()


@contextmanager
def worker_holding_five(settings, app_env, tmp_path):
    """A fetch worker holding five messages (fetches for in ten minutes, of URLs that do
    not exist), killed with SIGKILL after the block's first part; yields (celery, kill)."""
    celery = queue.make_app(settings)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "newsloom", "worker", "-Q", "fetch"],
            env=app_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill() -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        wait_until(lambda: not queue.workers_alive(celery), 30, "the worker to be gone")

    try:
        wait_until(lambda: queue.workers_alive(celery), 60, "the worker to answer")
        for url_id in range(1, 6):
            celery.send_task(
                queue.FETCH_TASK, args=[10_000 + url_id], queue=queue.FETCH_QUEUE, countdown=600
            )
        wait_until(lambda: len(unacked(settings)) == 5, 30, "the worker to hold 5 messages")
        yield celery, kill
    finally:
        if worker.poll() is None:
            worker.kill()
        celery.close()


def assert_given_back(settings, celery) -> None:
    assert unacked(settings) == {}
    assert queue.queue_depths(celery)["fetch"] == 5
    assert queue.url_ids_in_broker(settings) == {10_001, 10_002, 10_003, 10_004, 10_005}
    first = json.loads(
        broker.redis_client(settings.redis_url).lindex(settings.redis_key_prefix + "fetch", 0)
    )
    assert first["headers"]["redelivered"] is True


def test_messages_of_a_dead_worker_are_given_back(settings, app_env, tmp_path):
    """As `up`'s supervisor does when a worker it runs died."""
    with worker_holding_five(settings, app_env, tmp_path) as (celery, kill):
        # A live worker's messages are not given back.
        assert queue.restore_orphans(celery, settings, taken_before=time.time()) == 0
        kill()
        assert queue.restore_orphans(celery, settings, taken_before=time.time()) == 5
        assert_given_back(settings, celery)


def test_scheduler_gives_back_what_no_live_worker_holds(settings, app_env, tmp_path):
    """As the scheduler does for workers elsewhere: two looks agree, then they go back."""
    quick = settings.model_copy(update={"lost_message_after": 0.5})
    with worker_holding_five(settings, app_env, tmp_path) as (celery, kill):
        scheduler = Scheduler(quick, db.make_pool(settings.database_url), threading.Event())

        def look() -> None:
            scheduler._last_orphan_check = 0.0  # its turn now, whatever the clock says
            scheduler.restore_orphans()

        try:
            time.sleep(0.6)  # the messages are older than lost_message_after
            look()
            look()
            assert len(unacked(settings)) == 5  # held by a live worker: kept
            kill()
            look()  # first look: orphans, not yet given back
            assert len(unacked(settings)) == 5
            look()
            assert_given_back(settings, celery)
        finally:
            scheduler.pool.close()
            scheduler.celery.close()


def test_reconciler_resends_what_the_broker_lost(settings, conn):
    """A URL in flight with no message anywhere (a broker restarted empty) is sent again
    after two looks; one whose message waits in a queue is left alone."""
    quick = settings.model_copy(update={"lost_message_after": 0.1})
    lost, waiting = db.record_new_urls(
        conn,
        None,
        [("https://a.example/lost", None, None), ("https://a.example/waiting", None, None)],
    )
    celery = queue.make_app(quick)
    scheduler = Scheduler(quick, db.make_pool(settings.database_url), threading.Event())
    scheduler._last_orphan_check = time.monotonic() + 3600  # this test is about lost URLs
    try:
        queue.enqueue_fetch([waiting], celery)
        time.sleep(0.2)
        scheduler.reconcile()
        assert queue.url_ids_in_broker(quick) == {waiting}  # first look: nothing resent
        scheduler.reconcile()
        assert queue.url_ids_in_broker(quick) == {waiting, lost}
        assert queue.queue_depths(celery)["fetch"] == 2
        time.sleep(0.2)
        scheduler.reconcile()
        scheduler.reconcile()
        assert queue.queue_depths(celery)["fetch"] == 2  # both have their message: no more
    finally:
        scheduler.pool.close()
        scheduler.celery.close()
        celery.close()
