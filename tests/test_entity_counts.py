"""The entity counters (entity_daily_counts, entity_pair_counts) and each article's top
entities (article_top_entities) kept by triggers: equal to a recount after whatever changes
article_entities or an article's day, and what the views and the API read."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from support import store_text

from newsloom import db

DAY1 = datetime(2025, 3, 1, 12, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 23, 30, tzinfo=UTC)
DAY3 = datetime(2025, 3, 5, 0, 10, tzinfo=UTC)


def counted(conn) -> tuple[list, list]:
    return (
        conn.execute(
            """SELECT entity_id, day, articles, mentions FROM entity_daily_counts
               ORDER BY 1, 2"""
        ).fetchall(),
        conn.execute(
            "SELECT entity_id, other_id, articles FROM entity_pair_counts ORDER BY 1, 2"
        ).fetchall(),
    )


def check_counters(conn) -> None:
    assert db.entity_tables_off(conn) == 0


def store(conn, n: int, when: datetime, entities) -> int:
    _, article_id = store_text(
        conn,
        f"https://a.example/{n}",
        f"Story {n} " * 30 + str(n) * 40,
        when=when,
        entities=entities,
    )
    return article_id


def reprocess(conn, article_id: int, when: datetime, entities) -> None:
    """What `newsloom reprocess` does to an article: new content (here a new publication
    time) and new entities."""
    content = conn.execute(
        sql.SQL("SELECT {} FROM articles WHERE id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, db.ARTICLE_CONTENT))
        ),
        (article_id,),
    ).fetchone()
    with conn.transaction():
        assert db.replace_article_content(
            conn, article_id, {**content, "published_at": when}, entities, updated=False
        )


def entity_id(conn, name: str) -> int:
    return conn.execute("SELECT id FROM entities WHERE name = %s", (name,)).fetchone()["id"]


def test_counters_equal_a_recount(conn):
    iran, turkey, erdogan = ("Iran", "GPE", 3), ("Turkey", "GPE", 1), ("Erdogan", "PERSON", 2)
    first = store(conn, 1, DAY1, [iran, turkey, erdogan])
    store(conn, 2, DAY1, [iran, turkey])
    third = store(conn, 3, DAY2, [("Iran", "GPE", 1), ("UN", "ORG", 4)])
    store(conn, 4, DAY3, [])
    check_counters(conn)
    days, pairs = counted(conn)
    assert len(days) == 5 and len(pairs) == 4
    ids = {name: entity_id(conn, name) for name in ("Iran", "Turkey", "Erdogan", "UN")}
    assert (ids["Iran"], DAY1.date(), 2, 6) in [tuple(r.values()) for r in days]

    # Reprocess: another day, other entities (Turkey dropped, NATO new).
    reprocess(conn, first, DAY3, [("Iran", "GPE", 1), erdogan, ("NATO", "ORG", 1)])
    check_counters(conn)
    # Reprocess finding the same day and entities changes nothing.
    before = counted(conn)
    reprocess(conn, third, DAY2 + timedelta(minutes=10), [("UN", "ORG", 4), ("Iran", "GPE", 1)])
    assert counted(conn) == before
    # An operator's changes: a publication time, mentions, a deleted row, article and entity.
    conn.execute("UPDATE articles SET published_at = NULL WHERE id = %s", (third,))
    conn.execute(
        "UPDATE article_entities SET mentions = 7 WHERE article_id = %s AND entity_id = %s",
        (first, ids["Erdogan"]),
    )
    check_counters(conn)
    conn.execute("DELETE FROM article_entities WHERE entity_id = %s", (ids["Turkey"],))
    check_counters(conn)
    conn.execute("DELETE FROM articles WHERE id = %s", (first,))
    check_counters(conn)
    conn.execute("DELETE FROM entities WHERE id = %s", (ids["UN"],))
    check_counters(conn)
    with pytest.raises(psycopg.errors.RaiseException, match="not moved"):
        conn.execute("UPDATE article_entities SET entity_id = %s", (ids["Erdogan"],))
    conn.execute("UPDATE entity_daily_counts SET mentions = mentions + 1")  # the check sees it
    assert db.entity_tables_off(conn) == 2 * len(counted(conn)[0]) > 0
    tops = conn.execute("SELECT count(*) AS n FROM article_top_entities").fetchone()["n"]
    conn.execute("UPDATE article_top_entities SET entities = '[]'")
    assert db.entity_tables_off(conn) == 2 * len(counted(conn)[0]) + 2 * tops and tops > 0
    conn.execute("TRUNCATE articles CASCADE")
    assert counted(conn) == ([], [])


def test_the_views_and_the_api_read_the_counters(conn):
    for n in range(6):
        entities = [("Iran", "GPE", 1 + n % 2), ("Turkey", "GPE", 1)][: 1 + n % 2]
        store(conn, n, DAY1 + timedelta(days=n // 2, hours=n), entities)
    check_counters(conn)
    assert conn.execute(
        "SELECT other, other_label, articles FROM entity_pairs WHERE entity = 'Iran'"
    ).fetchall() == [{"other": "Turkey", "other_label": "GPE", "articles": 3}]
    assert conn.execute(
        "SELECT entity, articles FROM entity_pairs WHERE other = 'Iran'"
    ).fetchall() == [{"entity": "Turkey", "articles": 3}]
    daily = conn.execute(
        """SELECT day, articles, mentions FROM entity_mentions_daily WHERE entity = 'Iran'
           ORDER BY day"""
    ).fetchall()
    midnight = datetime(2025, 3, 1, tzinfo=UTC)
    assert [(r["day"], r["articles"], r["mentions"]) for r in daily] == [
        (midnight + timedelta(days=d), 2, 3) for d in range(3)
    ]
    iran = entity_id(conn, "Iran")
    timeline = db.entity_timeline(
        conn, iran, since=midnight - timedelta(days=1), until=midnight + timedelta(days=2)
    )
    assert [(r["day"], r["articles"], r["mentions"]) for r in timeline] == [
        ((midnight - timedelta(days=1)).date(), 0, 0),
        (midnight.date(), 2, 3),
        ((midnight + timedelta(days=1)).date(), 2, 3),
    ]
    # Whole days from the counters, the parts of days at either end from the articles:
    # from 13:00 on day 1 (article 1 in, article 0 at 12:00 out) to 15:00 on day 3
    # (article 4 at 16:00 out): articles 1 to 3.
    top = db.top_entities(
        conn, since=DAY1 + timedelta(hours=1), until=DAY1 + timedelta(days=2, hours=3)
    )
    assert [(r["name"], r["articles"], r["mentions"]) for r in top] == [
        ("Iran", 3, 5),
        ("Turkey", 2, 2),
    ]
    within_a_day = db.top_entities(
        conn, since=DAY1 + timedelta(hours=1), until=DAY1 + timedelta(hours=2), name="ir"
    )
    assert [(r["name"], r["articles"], r["mentions"]) for r in within_a_day] == [("Iran", 1, 2)]


def test_concurrent_store_steps_keep_the_counts(conn, database_url):
    """Store steps on many connections at once, their entities overlapping in random
    orders: none waits on another in a circle, and the counts equal a recount."""
    names = [(f"Entity {k}", "ORG") for k in range(12)]

    def worker(w: int) -> None:
        rng = random.Random(w)
        with db.connect(database_url) as own:
            own.autocommit = True
            for n in range(15):
                picked = rng.sample(names, 6)
                entities = [(name, label, 1 + n % 3) for name, label in picked]
                store(own, w * 100 + n, DAY1 + timedelta(hours=n % 3 * 20), entities)

    with ThreadPoolExecutor(6) as executor:
        list(executor.map(worker, range(6)))  # re-raises a worker's error
    assert conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == 90
    check_counters(conn)
