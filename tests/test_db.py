"""The SQL layer against a real Postgres."""

from support import store_text

from newsloom import db


def test_sync_feeds_adds_updates_and_deactivates(conn):
    db.sync_feeds(
        conn,
        [("https://a.org/rss", "A", 900, None, True), ("https://b.org/rss", None, 60, 2.0, False)],
    )
    db.sync_feeds(conn, [("https://a.org/rss", "A2", 300, None, True)])
    rows = {r["url"]: r for r in db.list_feeds(conn)}
    assert rows["https://a.org/rss"]["name"] == "A2" and rows["https://a.org/rss"]["active"]
    assert rows["https://a.org/rss"]["interval_seconds"] == 300
    assert not rows["https://b.org/rss"]["active"]
    db.sync_feeds(conn, [("https://b.org/rss", None, 60, 2.0, False)])
    assert {r["url"]: r["active"] for r in db.list_feeds(conn)} == {
        "https://a.org/rss": False,
        "https://b.org/rss": True,
    }


def test_due_feeds_are_claimed_once(conn, database_url):
    db.sync_feeds(conn, [(f"https://f{i}.org/rss", None, 900, None, True) for i in range(5)])
    with db.connect(database_url) as other:
        first = db.claim_due_feeds(conn, 3, lease_seconds=60)
        second = db.claim_due_feeds(other, 10, lease_seconds=60)
    assert len(first) == 3 and len(second) == 2
    assert not {f.id for f in first} & {f.id for f in second}
    assert db.claim_due_feeds(conn, 10, lease_seconds=60) == []


def test_new_urls_recorded_once(conn):
    db.sync_feeds(conn, [("https://a.org/rss", None, 900, None, True)])
    feed_id = db.list_feeds(conn)[0]["id"]
    first = db.record_new_urls(
        conn, feed_id, [("https://a.org/1", None, None), ("https://a.org/2", None, None)]
    )
    again = db.record_new_urls(
        conn, feed_id, [("https://a.org/2", None, None), ("https://a.org/3", None, None)]
    )
    assert len(first) == 2 and len(again) == 1
    assert db.outcome_counts(conn) == {"queued": 3}


def test_store_is_idempotent_and_attaches_duplicates(conn):
    entities = [("Iraq", "GPE", 3), ("Erdogan", "PERSON", 1)]
    text = "Iraq and Iran hold joint military drills near the border, officials said."
    first = store_text(conn, "https://a.org/x", text, entities=entities)
    assert first[0] == "stored"
    assert store_text(conn, "https://a.org/x", text, entities=entities) == first
    assert store_text(conn, "https://a.org/x?utm_source=y", text)[0] == "duplicate"
    assert store_text(conn, "https://mirror.org/x", text) == ("duplicate", first[1])
    counts = conn.execute("""SELECT (SELECT count(*) FROM articles) a,
                                    (SELECT count(*) FROM article_urls) u,
                                    (SELECT count(*) FROM entities) e,
                                    (SELECT sum(mentions) FROM article_entities) m""").fetchone()
    assert counts == {"a": 1, "u": 3, "e": 2, "m": 4}
    assert db.outcome_counts(conn) == {"stored": 1, "duplicate": 2}


def test_dead_letter_ends_the_url(conn):
    [url_id] = db.record_new_urls(conn, None, [("https://a.org/x", None, None)])
    for attempts in (1, 2):
        db.add_dead_letter(
            conn,
            task="newsloom.fetch",
            payload={"url_id": url_id},
            url_id=url_id,
            error_class="ValueError",
            error="ValueError: boom",
            traceback="tb",
            attempts=attempts,
        )
    rows = conn.execute("SELECT * FROM dead_letters").fetchall()
    assert len(rows) == 1 and rows[0]["attempts"] == 2 and rows[0]["payload"] == {"url_id": url_id}
    assert db.outcome_counts(conn) == {"dead": 1}


def test_stale_in_flight(conn):
    ids = db.record_new_urls(
        conn, None, [("https://a.org/1", None, None), ("https://a.org/2", None, None)]
    )
    conn.execute("UPDATE urls SET updated_at = now() - interval '2 hours' WHERE id = %s", (ids[0],))
    conn.commit()
    assert [r["id"] for r in db.stale_in_flight(conn, 3600, 10)] == [ids[0]]
    assert db.stale_in_flight(conn, 3600, 10) == []  # touched: not resent twice in a row
