"""Broker outages never end a worker: the settings that keep it reconnecting, and the
work-around for the crash on a lost connection (celery#9250, kombu's Redis transport)."""

from __future__ import annotations

import kombu
import pytest

from newsloom import queue


def test_workers_reconnect_for_ever_and_keep_their_tasks(settings):
    config = queue.celery_config(settings)
    assert config["broker_connection_retry"] is True
    assert config["broker_connection_max_retries"] is None
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False


def test_a_channel_whose_transport_is_gone_raises_a_connection_error(settings):
    """What Celery does on a lost connection: kombu lets go of the transport, then the
    channel is closed (giving back its unacknowledged messages) and tasks still finishing
    acknowledge theirs. Without the work-around: AttributeError, the worker ends."""
    import newsloom.worker.tasks  # noqa: F401 - installs the work-around, as in a worker

    with kombu.Connection(
        settings.redis_url, transport_options={"global_keyprefix": settings.redis_key_prefix}
    ) as conn:
        channel = conn.channel()
        channel.qos._delivered["tag-1"] = object()
        channel._pool = None  # as after the failed reconnection
        transport, channel.connection = channel.connection, None
        with pytest.raises(conn.connection_errors):  # kombu and Celery pass over these
            channel.qos.ack("tag-1")
        channel.connection, transport.client = transport, None
        with pytest.raises(conn.connection_errors):
            channel.qos.restore_unacked()
        conn.maybe_close_channel(channel)  # what Connection.close does: no exception
