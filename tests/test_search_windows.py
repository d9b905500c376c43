"""Full-text search of the article listing (db.list_articles with `q`): a rarer query is
answered from windows of the newest articles; every page it gives must be the one the plain
walk of the listing gives, page after page, with filters and with ties on the date."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from newsloom import db

# Facts that make every query common: the listing is walked, no window.
WALK = db.SearchFacts(matches=math.inf, articles=1.0, date_quantiles=())
QUERIES = ("w1", "w12", "w60", "w200", "w700", "w2 w3", '"w1 w2"', "w300 or w301", "w9 -w1")


@pytest.fixture
def collection(conn):
    """4,000 articles of 40-44 words drawn from 2,000 (word n about n^-2/3 as often), three to
    each minute, with entities; analysed, so the planner knows the words."""
    conn.execute("SELECT setseed(0.25)")
    conn.execute(
        """INSERT INTO feeds (url, name, interval_seconds)
           VALUES ('https://feed.example/rss', 'Feed', 900)"""
    )
    conn.execute(
        """INSERT INTO articles (url, canonical_url, title, published_at, language, text,
                                 feed_id, fetched_at, content_hash, extractor)
           SELECT 'https://news.example/' || i, 'https://news.example/' || i, 'Story ' || i,
                  now() - (i / 3) * interval '1 minute',
                  CASE WHEN i % 4 = 0 THEN 'de' ELSE 'en' END,
                  (SELECT string_agg('w' || (1 + floor(2000 * random() ^ 3))::int, ' ')
                   FROM generate_series(1, 40 + i % 5)),
                  1, now(), md5(i::text), 'test'
           FROM generate_series(1, 4000) AS i"""
    )
    conn.execute(
        """INSERT INTO entities (name, label)
           SELECT 'Entity ' || e, 'ORG' FROM generate_series(1, 50) AS e"""
    )
    conn.execute(
        """INSERT INTO article_entities (article_id, entity_id, mentions)
           SELECT a.id, 1 + (a.id * k) % 50, k FROM articles a, generate_series(1, 3) AS k
           ON CONFLICT DO NOTHING"""
    )
    conn.execute("ANALYZE articles")
    return conn


def pages(conn, q: str, limit: int, facts: db.SearchFacts, **filters) -> list[list[int]]:
    """Every page of the search, following the keyset cursor."""
    found, before = [], None
    while True:
        rows = db.list_articles(conn, q=q, limit=limit, before=before, facts=facts, **filters)
        found.append([r["id"] for r in rows])
        if len(rows) < limit:
            return found
        before = (rows[-1]["published_at"], rows[-1]["id"])


@pytest.mark.parametrize("limit", [7, 51])
def test_windows_give_the_walks_pages(collection, limit):
    windowed = 0
    for q in QUERIES:
        facts = db.search_facts(collection, q)
        windowed += next(facts.windows(limit, None), None) is not None
        assert pages(collection, q, limit, facts) == pages(collection, q, limit, WALK), q
    assert windowed >= 3  # the rarer words were answered from windows


def test_windows_with_filters(collection):
    for q in ("w60", "w200"):
        facts = db.search_facts(collection, q)
        for filters in ({"language": "de"}, {"entity_id": 7}, {"feed_name": "Feed"}):
            assert pages(collection, q, 5, facts, **filters) == pages(
                collection, q, 5, WALK, **filters
            ), (q, filters)


def test_a_window_too_narrow_is_widened(collection):
    """Facts that promise far more matches than there are: the first window holds too few,
    and the search widens it until the page is full."""
    facts = db.search_facts(collection, "w200")
    hopeful = db.SearchFacts(facts.articles / 9, facts.articles, facts.date_quantiles)
    assert pages(collection, "w200", 10, hopeful) == pages(collection, "w200", 10, WALK)


def test_window_bounds():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    quantiles = tuple(now - timedelta(days=100 - d) for d in range(101))  # oldest first
    facts = db.SearchFacts(matches=1600, articles=100_000, date_quantiles=quantiles)
    # 2 x 50 of 1,600 matches: in the newest 6.25 %, then 50 %, then all.
    assert list(facts.windows(50, None)) == [quantiles[93], quantiles[50], None]
    # After a cursor 30 % down the collection, the windows start there.
    after_cursor = list(facts.windows(50, quantiles[70]))
    assert after_cursor[0] == quantiles[63] and after_cursor[-1] is None
    assert list(db.SearchFacts(20_000, 100_000, quantiles).windows(50, None)) == []  # common
    assert list(db.SearchFacts(10, 100_000, ()).windows(50, None)) == [None]  # no statistics
