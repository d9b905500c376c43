"""Broker outages never end a worker: the settings that keep it reconnecting, and the
work-around for the crash on a lost connection (celery#9250, kombu's Redis transport)."""

from __future__ import annotations

import kombu

from newsloom import queue


def test_workers_reconnect_for_ever_and_keep_their_tasks(settings):
    config = queue.celery_config(settings)
    assert config["broker_connection_retry"] is True
    assert config["broker_connection_max_retries"] is None
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False


def test_closing_a_channel_whose_transport_is_gone_does_not_raise(settings):
    """What Celery does on a lost connection: kombu has let go of the transport's client,
    then the channel is closed and tries to give back its unacknowledged messages."""
    import newsloom.worker.tasks  # noqa: F401 - installs the work-around, as in a worker

    with kombu.Connection(settings.redis_url, transport_options={
            "global_keyprefix": settings.redis_key_prefix}) as conn:
        channel = conn.channel()
        channel.qos._delivered["tag-1"] = object()
        channel._pool = None  # as after the failed reconnection
        channel.connection.client = None
        channel.qos.restore_unacked()  # AttributeError ('hostname') without the work-around
        assert not channel.qos._delivered
