"""The transactional outbox: every stored article, text update and attached copy writes
one event in the change's transaction, and listeners are notified at commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from support import store_text

from newsloom import db

TEXT = (
    "The harbour council voted on Tuesday to rebuild the old sea wall before winter. "
    "Engineers said the storm of March had cracked it in three places. "
) * 4
OTHER = (
    "A new library opened in the market square with a reading room for children and "
    "a cafe run by volunteers from the neighbourhood association. "
) * 4


def events(conn) -> list[tuple[str, int]]:
    return [
        (r["kind"], r["article_id"])
        for r in conn.execute("SELECT kind, article_id FROM events ORDER BY id")
    ]


def test_store_duplicate_and_update_each_write_one_event(conn):
    when = datetime(2026, 1, 1, tzinfo=UTC)
    _, article = store_text(conn, "https://a.org/x", TEXT, when=when)
    assert events(conn) == [("stored", article)]
    # Running the same store again (a redelivered task) adds nothing.
    store_text(conn, "https://a.org/x", TEXT, when=when)
    assert events(conn) == [("stored", article)]

    assert store_text(conn, "https://mirror.org/x", TEXT, when=when) == ("duplicate", article)
    store_text(conn, "https://mirror.org/x", TEXT, when=when)
    assert events(conn) == [("stored", article), ("duplicate", article)]

    # A later fetch of the article's own URL with another text replaces it: 'updated'.
    conn.execute("UPDATE urls SET state = 'queued' WHERE url = 'https://a.org/x'")
    later = when + timedelta(hours=1)
    assert store_text(conn, "https://a.org/x", OTHER, when=later) == ("stored", article)
    assert events(conn)[-1] == ("updated", article)
    assert len(events(conn)) == 3


def test_no_event_without_its_change_and_no_change_without_its_event(conn):
    def die_before_commit() -> None:
        with conn.transaction():
            store_text(conn, "https://a.org/x", TEXT)
            raise RuntimeError("the worker died before commit")

    with pytest.raises(RuntimeError):
        die_before_commit()
    assert conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == 0
    assert events(conn) == []
    store_text(conn, "https://a.org/y", TEXT)
    store_text(conn, "https://b.org/y", OTHER)
    stored = conn.execute("SELECT count(*) AS n FROM events WHERE kind = 'stored'").fetchone()
    assert stored["n"] == conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == 2


def test_reprocess_writes_an_event_only_when_the_text_changes(conn):
    _, article = store_text(conn, "https://a.org/x", TEXT)
    row = conn.execute("SELECT * FROM articles WHERE id = %s", (article,)).fetchone()
    content = {c: row[c] for c in db.ARTICLE_CONTENT}
    assert db.replace_article_content(conn, article, content, [], updated=False)
    assert events(conn) == [("stored", article)]
    assert db.replace_article_content(
        conn, article, {**content, "text": OTHER, "content_hash": "another"}, [], updated=False
    )
    assert events(conn) == [("stored", article), ("updated", article)]


def test_listeners_are_notified_at_commit(conn, database_url):
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {db.EVENTS_CHANNEL}")
        with conn.transaction():
            store_text(conn, "https://a.org/x", TEXT)
            assert list(listener.notifies(timeout=0.2)) == []  # not before commit
        [note] = list(listener.notifies(timeout=5, stop_after=1))
    [event] = conn.execute("SELECT id FROM events").fetchall()
    assert note.channel == db.EVENTS_CHANNEL and note.payload == str(event["id"])
