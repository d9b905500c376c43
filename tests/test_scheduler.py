"""Feed polling and the scheduler loop against a loopback site, Postgres and Redis."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from site_fixture import FeedItem, atom, rss1, rss2
from support import wait_until

from newsloom import broker, db, web
from newsloom.errors import Permanent
from newsloom.scheduler.poll import poll_feed
from newsloom.scheduler.service import Scheduler

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def items(site, n=3):
    return [FeedItem(site.url(f"/story/{i}"), f"Story {i}", published=WHEN) for i in range(n)]


@pytest.fixture
def client(settings):
    with web.make_client(settings) as http_client:
        yield http_client


@pytest.mark.parametrize("build", [rss2, rss1, atom])
def test_feed_formats(site, client, settings, build):
    site.add(
        "/feed", build(items(site), title="T", link=site.url("/")), content_type="application/xml"
    )
    result = poll_feed(client, site.url("/feed"), settings)
    assert [e.url for e in result.entries] == [site.url(f"/story/{i}") for i in range(3)]
    assert all(e.published_at == WHEN for e in result.entries)


def test_relative_and_garbage_links(site, client, settings):
    feed = rss2(
        [
            FeedItem("/relative/1", "rel"),
            FeedItem("javascript:alert(1)", "js"),
            FeedItem("mailto:x@example.org", "mail"),
            FeedItem("", "empty"),
        ],
        title="T",
        link=site.url("/"),
    )
    site.add("/feed", feed, content_type="application/rss+xml")
    result = poll_feed(client, site.url("/feed"), settings)
    assert [e.url for e in result.entries] == [site.url("/relative/1")]
    assert result.rejected_links == 3


def test_conditional_get(site, client, settings):
    site.add(
        "/feed",
        rss2(items(site), title="T", link=site.url("/")),
        content_type="application/rss+xml",
        etag='"v1"',
        last_modified="Mon, 06 May 2024 07:08:09 GMT",
    )
    first = poll_feed(client, site.url("/feed"), settings)
    assert first.etag == '"v1"' and not first.not_modified
    second = poll_feed(
        client, site.url("/feed"), settings, etag=first.etag, last_modified=first.last_modified
    )
    assert second.not_modified and second.entries == []
    assert site.requests[-1].headers.get("If-None-Match") == '"v1"'


@pytest.mark.parametrize(
    "body, content_type, reason",
    [
        ("<html><body><p>Not a feed</p></body></html>", "text/html", "not_a_feed"),
        ("", "application/rss+xml", "not_a_feed"),
        (
            "<?xml version='1.0'?><rss version='2.0'><channel><title>cut",
            "application/rss+xml",
            "malformed_feed",
        ),
    ],
)
def test_not_a_feed(site, client, settings, body, content_type, reason):
    site.add("/feed", body, content_type=content_type)
    with pytest.raises(Permanent) as caught:
        poll_feed(client, site.url("/feed"), settings)
    assert caught.value.reason == reason


def test_truncated_feed_keeps_the_entries_before_the_break(site, client, settings):
    whole = rss2(items(site), title="T", link=site.url("/"))
    site.add("/feed", whole[: whole.index("Story 2")], content_type="application/rss+xml")
    result = poll_feed(client, site.url("/feed"), settings)
    assert [e.url for e in result.entries][:2] == [site.url("/story/0"), site.url("/story/1")]


def write_feeds(settings, *urls, interval="15m"):
    settings.feeds.write_text(
        "".join(f'[[feed]]\nurl = "{u}"\ninterval = "{interval}"\n\n' for u in urls)
    )


def fetch_queue(settings) -> list[bytes]:
    client = broker.redis_client(settings.redis_url)
    return client.lrange(f"{settings.redis_key_prefix}fetch", 0, -1)


def poll_feeds_file(settings, database_url, *feed_urls) -> None:
    """A scheduler's first cycle over a feeds file listing `feed_urls`."""
    write_feeds(settings, *feed_urls)
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        run_once(scheduler)


def run_once(scheduler: Scheduler) -> int:
    with ThreadPoolExecutor(2) as executor:
        return scheduler.poll_due(executor)


def test_new_urls_recorded_then_enqueued_once(site, settings, conn, database_url):
    site.add(
        "/feed",
        rss2(items(site), title="T", link=site.url("/")),
        content_type="application/rss+xml",
        etag='"v1"',
    )
    write_feeds(settings, site.url("/feed"), interval="1s")
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        assert run_once(scheduler) == 1
        assert len(fetch_queue(settings)) == 3
        conn.execute("UPDATE feeds SET next_check_at = now()")
        conn.commit()
        assert run_once(scheduler) == 1
    assert len(fetch_queue(settings)) == 3  # nothing enqueued twice
    # The second poll sent the validator and got a 304: nothing was parsed or enqueued.
    assert site.requests[-1].headers.get("If-None-Match") == '"v1"'
    assert db.outcome_counts(conn) == {"queued": 3}
    [feed] = db.list_feeds(conn)
    assert feed["items_seen"] == 3 and feed["consecutive_errors"] == 0
    assert feed["last_success_at"] is not None


def test_failing_feed_backs_off_and_recovers(site, settings, conn, database_url):
    site.add("/feed", "down", status=503)
    write_feeds(settings, site.url("/feed"), interval="60s")
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        delays = []
        for _ in range(3):
            conn.execute("UPDATE feeds SET next_check_at = now()")
            conn.commit()
            run_once(scheduler)
            delays.append(
                conn.execute(
                    "SELECT extract(epoch FROM next_check_at - now()) AS s FROM feeds"
                ).fetchone()["s"]
            )
        [feed] = db.list_feeds(conn)
        assert feed["consecutive_errors"] == 3 and "503" in feed["last_error"]
        # Backoff doubles per error, with jitter within [ceiling/2, ceiling].
        assert 60 <= delays[0] <= 121 and 120 <= delays[1] <= 241 and 240 <= delays[2] <= 481
        site.add(
            "/feed",
            rss2(items(site, 1), title="T", link=site.url("/")),
            content_type="application/rss+xml",
        )
        conn.execute("UPDATE feeds SET next_check_at = now()")
        conn.commit()
        run_once(scheduler)
    [feed] = db.list_feeds(conn)
    assert feed["consecutive_errors"] == 0 and feed["active"]


def test_feeds_file_edits_take_effect(site, settings, conn, database_url):
    write_feeds(settings, "https://a.example/rss")
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        write_feeds(settings, "https://b.example/rss", "https://c.example/rss")
        scheduler.reload_feeds()
        assert {f["url"]: f["active"] for f in db.list_feeds(conn)} == {
            "https://a.example/rss": False,
            "https://b.example/rss": True,
            "https://c.example/rss": True,
        }
        settings.feeds.write_text("[[feed]]\nurl = 'broken\n")
        scheduler.reload_feeds()  # logged, previous list kept
    assert sum(f["active"] for f in db.list_feeds(conn)) == 2


@pytest.mark.parametrize(
    "body, content_type, reason",
    [
        ("<html><body>A web page</body></html>", "text/html", "not_a_feed"),
        (
            "<?xml version='1.0'?><rss version='2.0'><channel><title>cut",
            "application/rss+xml",
            "malformed_feed",
        ),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png", "not_a_feed"),
    ],
)
def test_bad_feed_recorded_with_its_reason(
    site, settings, conn, database_url, body, content_type, reason
):
    site.add("/feed", body, content_type=content_type)
    poll_feeds_file(settings, database_url, site.url("/feed"))
    [feed] = db.list_feeds(conn)
    assert feed["consecutive_errors"] == 1 and reason in feed["last_error"]
    assert db.outcome_counts(conn) == {}


def test_garbage_links_counted_on_the_feed(site, settings, conn, database_url):
    feed = rss2(
        [
            FeedItem(site.url("/ok"), "ok"),
            FeedItem("javascript:void(0)", "js"),
            FeedItem("", "none"),
        ],
        title="T",
        link=site.url("/"),
    )
    site.add("/feed", feed, content_type="application/rss+xml")
    poll_feeds_file(settings, database_url, site.url("/feed"))
    [feed_row] = db.list_feeds(conn)
    assert feed_row["rejected_links"] == 2 and feed_row["items_seen"] == 1


def test_feed_with_ten_thousand_items(site, settings, conn, database_url):
    many = [FeedItem(site.url(f"/story/{i}"), f"Story {i}") for i in range(10_000)]
    site.add("/feed", rss2(many, title="T", link=site.url("/")), content_type="application/rss+xml")
    poll_feeds_file(settings, database_url, site.url("/feed"))
    assert db.outcome_counts(conn) == {"queued": 10_000}
    assert len(fetch_queue(settings)) == 10_000


def next_check_in(conn) -> float:
    return conn.execute(
        "SELECT extract(epoch FROM next_check_at - now()) AS s FROM feeds"
    ).fetchone()["s"]


def test_ttl_and_cache_control_respected(site, settings, conn, database_url):
    site.add(
        "/feed",
        rss2(items(site), title="T", link=site.url("/"), ttl=5),
        content_type="application/rss+xml",
        headers={"Cache-Control": "public, max-age=600"},
    )
    poll_feeds_file(settings, database_url, site.url("/feed"))
    assert 590 <= next_check_in(conn) <= 600


def test_retry_after_on_a_503_feed(site, settings, conn, database_url):
    site.add("/feed", "busy", status=503, headers={"Retry-After": "5000"})
    poll_feeds_file(settings, database_url, site.url("/feed"))
    assert 4990 <= next_check_in(conn) <= 5000


def test_two_schedulers_never_poll_a_feed_twice(site, settings, conn, database_url):
    paths = [f"/feed/{n}" for n in range(30)]
    for path in paths:
        site.add(
            path,
            rss2([FeedItem(site.url(path + "/story"), "s")], title="T", link=site.url("/")),
            content_type="application/rss+xml",
            delay=0.05,
        )
    write_feeds(settings, *(site.url(p) for p in paths), interval="1h")
    stop = threading.Event()
    with db.make_pool(database_url, max_size=10) as pool:
        schedulers = [Scheduler(settings, pool, stop) for _ in range(2)]
        threads = [threading.Thread(target=s.run) for s in schedulers]
        for thread in threads:
            thread.start()
        try:
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT count(*) AS n FROM feeds WHERE last_success_at IS NOT NULL"
                    ).fetchone()["n"]
                    == 30
                ),
                60,
                "every feed polled",
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert all(site.hits(p) == 1 for p in paths), {
        p: site.hits(p) for p in paths if site.hits(p) != 1
    }
    assert db.outcome_counts(conn) == {"queued": 30}


def test_an_updated_entry_of_a_stored_article_is_fetched_again(site, settings, conn, database_url):
    story = FeedItem(site.url("/story/0"), "Story", published=WHEN)
    site.add(
        "/feed", atom([story], title="T", link=site.url("/")), content_type="application/atom+xml"
    )
    settings = settings.model_copy(update={"refresh_min_age": 0.0})
    write_feeds(settings, site.url("/feed"), interval="1s")
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        run_once(scheduler)
        # As if the worker had stored it; then the same entry polled again, unchanged.
        conn.execute("UPDATE urls SET state = 'stored'")
        conn.execute("UPDATE feeds SET next_check_at = now()")
        conn.commit()
        run_once(scheduler)
        assert len(fetch_queue(settings)) == 1 and db.outcome_counts(conn) == {"stored": 1}
        # The feed says the entry was updated: the URL goes through the pipeline again.
        site.add(
            "/feed",
            atom(
                [replace(story, updated=WHEN + timedelta(hours=2))], title="T", link=site.url("/")
            ),
            content_type="application/atom+xml",
        )
        conn.execute("UPDATE feeds SET next_check_at = now()")
        conn.commit()
        run_once(scheduler)
    assert len(fetch_queue(settings)) == 2 and db.outcome_counts(conn) == {"queued": 1}
    [url] = conn.execute("SELECT entry_published_at, entry_updated_at FROM urls").fetchall()
    assert (url["entry_published_at"], url["entry_updated_at"]) == (WHEN, WHEN + timedelta(hours=2))
