"""Work held by a worker that died comes back at once, not after the visibility timeout;
work held by a live worker stays with it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from newsloom import queue
from newsloom.settings import load_settings

from support import wait_until


def unacked(settings) -> dict:
    client = queue.redis_client(settings.redis_url)
    try:
        return client.hgetall(settings.redis_key_prefix + "unacked")
    finally:
        client.close()


def test_messages_of_a_dead_worker_are_given_back(settings, app_env, tmp_path):
    # Fetches of URLs that do not exist, each for in ten minutes: the worker holds them
    # (taken from the queue, not acknowledged) until then.
    celery = queue.make_app(load_settings(**{**settings.model_dump()}))
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "newsloom", "worker", "-Q", "fetch"], env=app_env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: queue.workers_alive(celery), 60, "the worker to answer")
        for url_id in range(1, 6):
            celery.send_task(queue.FETCH_TASK, args=[10_000 + url_id], queue=queue.FETCH_QUEUE,
                             countdown=600)
        wait_until(lambda: len(unacked(settings)) == 5, 30, "the worker to hold 5 messages")
        # A live worker's messages are not given back.
        assert queue.restore_orphans(celery, settings, taken_before=time.time()) == 0
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        wait_until(lambda: not queue.workers_alive(celery), 30, "the worker to be gone")
        assert queue.restore_orphans(celery, settings, taken_before=time.time()) == 5
        assert unacked(settings) == {}
        assert queue.queue_depths(celery)["fetch"] == 5
        waiting = queue.url_ids_in_broker(settings)
        assert waiting == {10_001, 10_002, 10_003, 10_004, 10_005}
        held = json.loads(queue.redis_client(settings.redis_url).lindex(
            settings.redis_key_prefix + "fetch", 0))
        assert held["headers"]["redelivered"] is True
    finally:
        if worker.poll() is None:
            worker.kill()
        celery.close()
