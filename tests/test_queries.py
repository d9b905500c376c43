"""Full-text search and the views users query, on a real Postgres."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from support import store_text

from newsloom import db

DAY = datetime(2024, 5, 6, 12, tzinfo=UTC)


def add(conn, n: int, title: str, text: str, entities, *, feed_id=None, language="en", day=DAY):
    return store_text(
        conn,
        f"https://news.example/{n}",
        text,
        title=title,
        feed_id=feed_id,
        language=language,
        when=day,
        entities=entities,
    )[1]


def seed(conn):
    db.sync_feeds(conn, [("https://news.example/rss", "Example News", 900, None, True)])
    [feed] = db.list_feeds(conn)
    first = add(
        conn,
        1,
        "Erdogan meets Iranian leaders",
        "Talks in Tehran went on for hours.",
        [("Erdogan", "PERSON", 2), ("Tehran", "GPE", 1), ("Iran", "GPE", 1)],
        feed_id=feed["id"],
    )
    second = add(
        conn,
        2,
        "Grain exports rise",
        "Turkey and Iran signed a deal; Erdogan was absent.",
        [("Turkey", "GPE", 1), ("Iran", "GPE", 2), ("Erdogan", "PERSON", 1)],
        feed_id=feed["id"],
        day=DAY + timedelta(days=1),
    )
    third = add(
        conn,
        3,
        "Le marché du blé",
        "Les exportations de blé augmentent à Marseille.",
        [("Marseille", "GPE", 1)],
        language="fr",
    )
    return feed, first, second, third


def test_search_weights_the_title(conn, database_url):
    _, first, second, third = seed(conn)
    results = db.search_articles(conn, "erdogan")
    assert [r["id"] for r in results] == [first, second]
    assert "«Erdogan»" in results[1]["snippet"]
    assert [r["id"] for r in db.search_articles(conn, '"grain exports"')] == [second]
    assert [r["id"] for r in db.search_articles(conn, "erdogan -grain")] == [first]
    assert [r["id"] for r in db.search_articles(conn, "marseille")] == [third]  # not English
    assert db.search_articles(conn, "nothing matches this") == []


def test_search_command(conn, app_env):
    _, first, _, _ = seed(conn)
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", "search", "Erdogan", "--json"],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["id"] == first
    plain = subprocess.run(
        [sys.executable, "-m", "newsloom", "search", "grain exports"],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Grain exports rise" in plain.stdout and "https://news.example/2" in plain.stdout


def test_latest_articles_with_entities(conn):
    _, first, second, _ = seed(conn)
    rows = conn.execute(
        "SELECT id, feed, entities FROM latest_articles WHERE feed IS NOT NULL"
    ).fetchall()
    assert [r["id"] for r in rows] == [second, first]
    assert rows[0]["feed"] == "Example News"
    assert rows[0]["entities"][0] == "Iran (GPE)"  # most mentioned first


def test_entities_mentioned_together(conn):
    seed(conn)
    rows = conn.execute("""SELECT other, articles FROM entity_pairs WHERE entity = 'Erdogan'
                           ORDER BY articles DESC, other""").fetchall()
    assert [(r["other"], r["articles"]) for r in rows] == [
        ("Iran", 2),
        ("Tehran", 1),
        ("Turkey", 1),
    ]


def test_mentions_over_time(conn):
    seed(conn)
    rows = conn.execute("""SELECT day, articles, mentions FROM entity_mentions_daily
                           WHERE entity = 'Iran' ORDER BY day""").fetchall()
    assert [(r["day"].date().isoformat(), r["mentions"]) for r in rows] == [
        ("2024-05-06", 1),
        ("2024-05-07", 2),
    ]


def test_feed_stats(conn):
    feed, *_ = seed(conn)
    db.record_new_urls(conn, feed["id"], [("https://news.example/waiting", None, None)])
    [row] = conn.execute("SELECT * FROM feed_stats WHERE id = %s", (feed["id"],)).fetchall()
    assert (row["urls"], row["stored"], row["in_flight"], row["dead"]) == (3, 2, 1, 0)
