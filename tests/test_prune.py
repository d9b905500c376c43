"""Retention (newsloom prune) and the counters kept by triggers."""

from __future__ import annotations

import random
import threading
import zlib
from functools import partial

import pytest
from support import run_newsloom, store_text

from newsloom import db, retention
from newsloom.errors import SettingsError
from newsloom.scheduler.service import Scheduler
from newsloom.settings import load_settings

DAY = 86400.0
WORDS = [
    "harbour",
    "quay",
    "spring",
    "budget",
    "council",
    "minister",
    "river",
    "bridge",
    "school",
    "vote",
    "rail",
    "market",
    "storm",
    "grain",
    "festival",
    "court",
    "museum",
    "tunnel",
    "ferry",
    "clinic",
]


def text(seed: str) -> str:
    """A text of its own for each seed: distinct seeds are not near-duplicates."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(80)) + "."


def kept_page(conn, url: str, body: str, feed_id: int | None = None) -> int:
    """A URL fetched (page kept) and stored as an article; returns its ledger id."""
    [url_id] = db.record_new_urls(conn, feed_id, [(url, None, None)])
    db.save_raw_page(
        conn,
        url_id,
        final_url=url,
        content_type="text/html",
        html_zlib=zlib.compress(f"<p>{body}</p>".encode()),
    )
    store_text(conn, url, body, feed_id=feed_id)
    return url_id


def age(conn, url_id: int, days: float) -> None:
    """Make a URL's ledger row and page look `days` old."""
    conn.execute(
        "UPDATE urls SET updated_at = now() - make_interval(days => %s) WHERE id = %s",
        (days, url_id),
    )
    conn.execute(
        "UPDATE raw_pages SET fetched_at = now() - make_interval(days => %s) WHERE url_id = %s",
        (days, url_id),
    )


def ids(conn, table: str, column: str = "id") -> set[int]:
    return {r["k"] for r in conn.execute(f"SELECT {column} AS k FROM {table}")}


@pytest.fixture
def feed_id(conn) -> int:
    db.sync_feeds(conn, [("https://a.example/rss", "A", 900, None, True)])
    return db.list_feeds(conn)[0]["id"]


def check_counters(conn) -> None:
    """The counters equal a recount: by state and reason, articles, and per feed."""
    assert db.counted_urls(conn) == db.recount_urls(conn)
    assert (
        conn.execute("SELECT coalesce(sum(n), 0) AS n FROM article_counts").fetchone()["n"]
        == conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"]
    )
    recount = conn.execute(
        """SELECT f.id, count(u.id) AS urls, count(*) FILTER (WHERE u.state = 'stored') AS stored,
                  count(*) FILTER (WHERE u.state = 'duplicate') AS duplicates,
                  count(*) FILTER (WHERE u.state = 'skipped') AS skipped,
                  count(*) FILTER (WHERE u.state = 'dead') AS dead,
                  count(*) FILTER (WHERE u.state IN ('queued', 'fetched')) AS in_flight
           FROM feeds f LEFT JOIN urls u ON u.feed_id = f.id
           GROUP BY f.id ORDER BY f.id"""
    ).fetchall()
    assert (
        conn.execute("""SELECT id, urls, stored, duplicates, skipped, dead, in_flight
                           FROM feed_stats ORDER BY id""").fetchall()
        == recount
    )


def test_counters_equal_a_recount(conn, feed_id):
    kept_page(conn, "https://a.example/1", text("One"), feed_id)
    kept_page(conn, "https://a.example/1?utm_source=x", text("One"), feed_id)  # duplicate
    more = db.record_new_urls(
        conn, feed_id, [(f"https://a.example/{n}", None, None) for n in range(2, 7)]
    )
    db.finish_url(conn, more[0], "skipped", reason="http_404")
    db.finish_url(conn, more[1], "skipped", reason="no_text")
    db.add_dead_letter(
        conn,
        task="newsloom.fetch",
        payload={},
        url_id=more[2],
        error_class="ReadTimeout",
        error="ReadTimeout: slow",
        traceback="",
        attempts=5,
    )
    check_counters(conn)
    [letter] = db.list_dead_letters(conn)
    db.replay_dead_letters(conn, [letter["id"]])  # dead -> queued
    conn.execute("UPDATE urls SET feed_id = NULL WHERE id = %s", (more[3],))  # moved off
    conn.execute("DELETE FROM urls WHERE id = %s", (more[4],))
    check_counters(conn)
    assert db.outcome_counts(conn) == {"stored": 1, "duplicate": 1, "skipped": 2, "queued": 2}
    report = db.status_report(conn)
    assert {
        (r["state"], r["reason"]): (r["total"], r["last_hour"]) for r in report["outcomes"]
    } == {
        ("stored", None): (1, 1),
        ("duplicate", None): (1, 1),
        ("skipped", "http_404"): (1, 1),
        ("skipped", "no_text"): (1, 1),
        ("queued", None): (2, 2),
    }
    assert report["articles"]["total"] == 1 and report["articles"]["last_hour"] == 1
    assert report["articles"]["per_hour"][0]["stored"] == 1
    conn.execute("TRUNCATE urls, articles CASCADE")
    check_counters(conn)
    assert db.outcome_counts(conn) == {}


def test_prune_pages_keeps_what_is_still_needed(conn, feed_id):
    old = kept_page(conn, "https://a.example/old", text("Old"), feed_id)
    recent = kept_page(conn, "https://a.example/recent", text("Recent"), feed_id)
    [in_flight, dead] = db.record_new_urls(
        conn, feed_id, [("https://a.example/f", None, None), ("https://a.example/d", None, None)]
    )
    for url_id in (in_flight, dead):
        db.save_raw_page(
            conn,
            url_id,
            final_url="https://a.example/x",
            content_type="text/html",
            html_zlib=zlib.compress(b"<p>x</p>"),
        )
    db.add_dead_letter(
        conn,
        task="newsloom.process",
        payload={},
        url_id=dead,
        error_class="ValueError",
        error="ValueError: x",
        traceback="",
        attempts=1,
    )
    for url_id in (old, in_flight, dead):
        age(conn, url_id, 40)
    settings = load_settings(raw_pages_keep="30d")

    assert db.count_prunable(conn, 30 * DAY, None)["raw_pages"] == 1
    result = retention.prune(conn, settings)
    assert (result.raw_pages, result.urls) == (1, 0) and result.raw_page_bytes > 0
    assert ids(conn, "raw_pages", "url_id") == {recent, in_flight, dead}
    assert ids(conn, "urls") == {old, recent, in_flight, dead}  # pages only
    # reprocess skips the article whose page went, and says so.
    assert db.articles_to_reprocess(conn, None) == [
        conn.execute("SELECT id FROM articles WHERE page_url_id = %s", (recent,)).fetchone()["id"]
    ]
    assert db.articles_without_kept_page(conn, None) == 1
    assert retention.prune(conn, settings).raw_pages == 0  # nothing more to do
    check_counters(conn)


def test_prune_urls_keeps_what_dedupe_and_reprocess_need(conn, feed_id):
    stored = kept_page(conn, "https://a.example/s", text("Stored"), feed_id)
    dup = kept_page(conn, "https://a.example/s?utm_medium=rss", text("Stored"), feed_id)
    [skipped, dead, queued] = db.record_new_urls(
        conn,
        feed_id,
        [
            ("https://a.example/404", None, None),
            ("https://a.example/dead", None, None),
            ("https://a.example/q", None, None),
        ],
    )
    db.finish_url(conn, skipped, "skipped", reason="http_404")
    db.add_dead_letter(
        conn,
        task="newsloom.fetch",
        payload={},
        url_id=dead,
        error_class="ReadTimeout",
        error="ReadTimeout: x",
        traceback="",
        attempts=5,
    )
    for url_id in (stored, dup, skipped, dead, queued):
        age(conn, url_id, 100)
    settings = load_settings(urls_keep="90d")

    assert db.count_prunable(conn, None, 90 * DAY)["urls"] == 2
    result = retention.prune(conn, settings)
    # The duplicate's row (and its page, which nothing reads) and the 404 go; the stored
    # article's row holds its kept page; the open dead letter and the URL in flight stay.
    assert result.urls == 2
    assert ids(conn, "urls") == {stored, dead, queued}
    assert ids(conn, "article_urls", "url") == {
        "https://a.example/s",
        "https://a.example/s?utm_medium=rss",
    }
    # Its page pruned too, the stored article's row can go; the article stays, page-less.
    result = retention.prune(conn, load_settings(urls_keep="90d", raw_pages_keep="90d"))
    assert (result.raw_pages, result.urls) == (1, 1)
    assert ids(conn, "urls") == {dead, queued}
    article = conn.execute("SELECT page_url_id FROM articles").fetchone()
    assert article == {"page_url_id": None}
    check_counters(conn)
    # A feed listing the pruned URLs again: the article's URLs are known (article_urls),
    # the 404 is new again.
    again = db.record_new_urls(
        conn,
        feed_id,
        [
            ("https://a.example/s", None, None),
            ("https://a.example/s?utm_medium=rss", None, None),
            ("https://a.example/404", None, None),
        ],
    )
    assert len(again) == 1
    assert (
        conn.execute("SELECT url FROM urls WHERE id = %s", (again[0],)).fetchone()["url"]
        == "https://a.example/404"
    )


def test_prune_works_in_batches_and_one_at_a_time(conn, database_url, feed_id):
    urls = db.record_new_urls(
        conn, feed_id, [(f"https://a.example/{n}", None, None) for n in range(7)]
    )
    for url_id in urls:
        db.finish_url(conn, url_id, "skipped", reason="http_404")
        age(conn, url_id, 3)
    settings = load_settings(urls_keep="1d")
    with db.connect(database_url) as other:
        assert db.try_lock_prune(other)
        assert not retention.prune(conn, settings).ran  # another prune holds the lock
        db.unlock_prune(other)
    result = retention.prune(conn, settings, batch=3)
    assert result.urls == 7 and ids(conn, "urls") == set()
    check_counters(conn)


def test_scheduler_prunes_once_a_day(conn, settings, feed_id):
    [url_id] = db.record_new_urls(conn, feed_id, [("https://a.example/x", None, None)])
    db.finish_url(conn, url_id, "skipped", reason="http_404")
    age(conn, url_id, 3)
    pool = db.make_pool(settings.database_url, max_size=1)
    try:
        scheduler = Scheduler(
            settings.model_copy(update={"urls_keep": DAY}), pool, threading.Event()
        )
        assert scheduler.prunes
        first = scheduler.prune_if_due()
        assert first is not None and first.urls == 1
        assert scheduler.prune_if_due() is None  # done today, here or on another scheduler
    finally:
        pool.close()
        conn.execute("DELETE FROM maintenance_runs")


def test_retention_settings():
    assert load_settings().raw_pages_keep is None and load_settings().urls_keep is None
    assert load_settings(raw_pages_keep="keep", urls_keep="90d").urls_keep == 90 * DAY
    assert load_settings(raw_pages_keep="12h").raw_pages_keep == 12 * 3600
    with pytest.raises(SettingsError, match="NEWSLOOM_URLS_KEEP"):
        load_settings(urls_keep="1h")


def test_prune_command(conn, app_env, feed_id):
    old = kept_page(conn, "https://a.example/old", text("Old"), feed_id)
    age(conn, old, 10)
    env = {**app_env, "NEWSLOOM_RAW_PAGES_KEEP": "7d"}

    newsloom = partial(run_newsloom, env)
    dry = newsloom("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 1 kept page(s) and 0 ledger row(s)" in dry.stdout
    assert ids(conn, "raw_pages", "url_id") == {old}
    done = newsloom("prune", "--json")
    assert done.returncode == 0 and '"raw_pages": 1' in done.stdout
    assert ids(conn, "raw_pages", "url_id") == set()
    redo = newsloom("reprocess", "--all")
    assert redo.returncode == 0, redo.stderr
    assert "reprocessed 0 of 0" in redo.stdout
    assert "1 article(s) cannot be reprocessed: their kept page was pruned" in redo.stdout


def test_migration_0007_counts_the_rows_already_there(servers, tmp_path, monkeypatch):
    """On a database holding data (made before the counters), the migration fills them
    from the rows and names each article's page row by id."""
    from support import scratch_database

    from newsloom import migrate

    real = {m.version: m for m in migrate.migrations()}
    for version in (1, 2):
        (tmp_path / real[version].path.name).write_text(real[version].sql())
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    with scratch_database(servers[0], "mig7") as url, db.connect(url) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        migrate.apply(conn)  # version 2, then data as that version wrote it
        conn.execute(
            "INSERT INTO feeds (url, interval_seconds) VALUES ('https://a.example/rss', 60)"
        )
        conn.execute(
            """INSERT INTO urls (url, feed_id, state, reason) VALUES
               ('https://a.example/1', 1, 'stored', NULL), ('https://a.example/2', 1, 'skipped',
               'http_404'), ('https://a.example/3', NULL, 'queued', NULL)"""
        )
        conn.execute(
            """INSERT INTO articles (url, canonical_url, text, fetched_at, content_hash,
                                     extractor)
               VALUES ('https://a.example/1', 'https://a.example/1', 'text', now(), 'h', 'x')"""
        )
        (tmp_path / "0003_retention_and_counters.sql").write_text(
            next(m for m in real.values() if m.name == "retention_and_counters").sql()
        )
        assert [m.name for m in migrate.apply(conn)] == ["retention_and_counters"]
        check_counters(conn)
        assert db.outcome_counts(conn) == {"stored": 1, "skipped": 1, "queued": 1}
        assert conn.execute("SELECT page_url_id FROM articles").fetchone() == {"page_url_id": 1}
        db.finish_url(conn, 3, "skipped", reason="no_text")  # and counts what follows
        check_counters(conn)
