"""Webhooks while `newsloom up` collects: a loopback receiver that fails its first
requests gets every event, signed, in event order, at least once, through a broker that
restarts empty. Size: NEWSLOOM_WEBHOOK_PAGES (default 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psycopg
import pytest
from site_fixture import FeedItem, article_html, rss2, synthetic_article
from support import PrivateRedis, wait_until
from webhook_receiver import Receiver

PAGES = int(os.environ.get("NEWSLOOM_WEBHOOK_PAGES", "12"))


def event_ids(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id")]


def url_outcomes(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM urls GROUP BY state").fetchall())


@pytest.mark.timeout(600)
def test_every_event_arrives_signed_in_order(site, settings, tmp_path, app_env):
    items = []
    for i in range(PAGES):
        title, paragraphs = synthetic_article(i)
        site.add(
            f"/news/{i}",
            article_html(title, paragraphs, canonical=site.url(f"/news/{i}")),
            delay=0.05,
        )
        items.append(FeedItem(site.url(f"/news/{i}"), title))
        if i % 4 == 0:  # a copy with tracking parameters: a 'duplicate' event
            items.append(FeedItem(site.url(f"/news/{i}?utm_source=x"), title))
    site.add(
        "/feed.xml",
        rss2(items, title="news", link=site.url("/")),
        content_type="application/rss+xml",
    )
    broker = PrivateRedis(tmp_path)
    broker.start()
    with Receiver("hush", fail_first=3) as receiver:
        settings.feeds.write_text(
            f'[[feed]]\nurl = "{site.url("/feed.xml")}"\ninterval = "1h"\n\n'
            f'[[webhook]]\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\n'
        )
        # Short timeouts, so messages the restart loses are found again within seconds.
        env = {
            **app_env,
            "REDIS_URL": broker.url,
            "HOOK_SECRET": "hush",
            "NEWSLOOM_WEBHOOK_TIMEOUT": "1s",
            "NEWSLOOM_RETRY_CAP": "2s",
            "NEWSLOOM_MAX_ATTEMPTS": "5",
            "NEWSLOOM_FETCH_TIMEOUT": "1s",
            "NEWSLOOM_MAX_REDIRECTS": "3",
            "NEWSLOOM_TASK_TIME_LIMIT": "25s",
            "NEWSLOOM_VISIBILITY_TIMEOUT": "30s",
        }
        with (tmp_path / "up.log").open("wb") as log:
            up = subprocess.Popen(
                [sys.executable, "-m", "newsloom", "up"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: len(receiver.received) >= 2, 180, "the first deliveries")
            broker.restart_empty()

            def all_delivered():
                outcomes = url_outcomes(settings.database_url)
                return (
                    sum(outcomes.values()) == len(items)
                    and not (outcomes.get("queued") or outcomes.get("fetched"))
                    and set(receiver.event_ids()) >= set(event_ids(settings.database_url))
                )

            wait_until(
                all_delivered, 300, "every URL settled and every event delivered", interval=0.5
            )
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-4000:]
        finally:
            if up.poll() is None:
                up.send_signal(signal.SIGTERM)
                up.wait(120)
            broker.stop()
    outcomes = url_outcomes(settings.database_url)
    # One event per stored article and attached copy: none missing, none extra.
    assert len(event_ids(settings.database_url)) == outcomes["stored"] + outcomes["duplicate"]
    received = receiver.event_ids()
    assert received == sorted(received), received  # in event order (repeats allowed)
    assert set(received) == set(event_ids(settings.database_url))
    assert all(r.signed for r in receiver.received)
    assert receiver.attempts >= len(set(received)) + 3
