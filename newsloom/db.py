"""All SQL lives here. Every statement is parameterised; every write is idempotent.

Connections are in autocommit mode, so a statement costs one round trip; a function that
writes more than once wraps its statements in a transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from newsloom.errors import Transient

IN_FLIGHT = ("queued", "fetched")
FINAL_STATES = ("stored", "duplicate", "skipped", "dead")


# newsloom's queries are short and bounded: no JIT compilation and no parallel workers.
# On large tables the planner's estimates (an array overlap guessed at 28,000 rows where
# there are none) made the store step start two parallel workers and other queries compile
# for longer (0.5-1.5 s) than they ran.
_SESSION_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0"


def connect(url: str, connect_timeout: int = 10) -> psycopg.Connection:
    return psycopg.connect(url, row_factory=dict_row, autocommit=True,
                           connect_timeout=connect_timeout, options=_SESSION_OPTIONS)


def make_pool(url: str, max_size: int = 4) -> ConnectionPool:
    """A pool whose connections are checked before use, so a restarted Postgres is survived."""
    return ConnectionPool(url, min_size=1, max_size=max_size, open=True,
                          kwargs={"row_factory": dict_row, "autocommit": True,
                                  "options": _SESSION_OPTIONS},
                          check=ConnectionPool.check_connection,
                          name="newsloom")


# --- feeds -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedRow:
    id: int
    url: str
    name: str | None
    interval_seconds: int
    etag: str | None
    last_modified: str | None
    consecutive_errors: int
    poll_every_seconds: float | None


def sync_feeds(conn: psycopg.Connection,
               feeds: Sequence[tuple[str, str | None, int, float | None, bool]]) -> None:
    """Make the `feeds` table match the feeds file: (url, name, interval_seconds,
    host_delay_seconds, obey_robots) each.

    Feeds no longer in the file become inactive (their articles stay); a feed added back
    is active again and keeps its history.
    """
    urls = [f[0] for f in feeds]
    with conn.transaction():
        conn.cursor().executemany(
            """INSERT INTO feeds (url, name, interval_seconds, host_delay_seconds, obey_robots)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (url) DO UPDATE SET name = EXCLUDED.name,
                   interval_seconds = EXCLUDED.interval_seconds,
                   host_delay_seconds = EXCLUDED.host_delay_seconds,
                   obey_robots = EXCLUDED.obey_robots, active = true
               WHERE (feeds.name, feeds.interval_seconds, feeds.host_delay_seconds,
                      feeds.obey_robots, feeds.active)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.interval_seconds,
                      EXCLUDED.host_delay_seconds, EXCLUDED.obey_robots, true)""",
            list(feeds))
        conn.execute("UPDATE feeds SET active = false WHERE active AND NOT (url = ANY(%s))", (urls,))


def claim_due_feeds(conn: psycopg.Connection, limit: int, lease_seconds: float) -> list[FeedRow]:
    """Take up to `limit` due feeds for this scheduler.

    Their next check moves `lease_seconds` ahead in the same statement, so another
    scheduler skips them (SKIP LOCKED) now and after this transaction commits.
    """
    rows = conn.execute(
        """UPDATE feeds SET next_check_at = now() + make_interval(secs => %s)
           FROM (SELECT id FROM feeds WHERE active AND next_check_at <= now()
                 ORDER BY next_check_at LIMIT %s FOR UPDATE SKIP LOCKED) due
           WHERE feeds.id = due.id
           RETURNING feeds.id, feeds.url, feeds.name, feeds.interval_seconds, feeds.etag,
                     feeds.last_modified, feeds.consecutive_errors, feeds.poll_every_seconds""",
        (lease_seconds, limit)).fetchall()
    return [FeedRow(**r) for r in rows]


def record_poll_success(conn: psycopg.Connection, feed_id: int, *, etag: str | None,
                        last_modified: str | None, poll_every: float, next_in: float,
                        items: int, rejected_links: int) -> None:
    conn.execute(
        """UPDATE feeds SET etag = %s, last_modified = %s, last_checked_at = now(),
               last_success_at = now(), consecutive_errors = 0, poll_every_seconds = %s,
               next_check_at = now() + make_interval(secs => %s),
               items_seen = items_seen + %s, rejected_links = %s
           WHERE id = %s""",
        (etag, last_modified, poll_every, next_in, items, rejected_links, feed_id))


def record_poll_failure(conn: psycopg.Connection, feed_id: int, *, error: str,
                        next_in: float) -> None:
    conn.execute(
        """UPDATE feeds SET last_checked_at = now(), last_error = %s, last_error_at = now(),
               consecutive_errors = consecutive_errors + 1,
               next_check_at = now() + make_interval(secs => %s)
           WHERE id = %s""",
        (error, next_in, feed_id))


def list_feeds(conn: psycopg.Connection, limit: int | None = None) -> list[dict]:
    """Feeds by id; the first `limit` of them (all if None)."""
    return conn.execute("SELECT * FROM feeds ORDER BY id LIMIT %s", (limit,)).fetchall()


# --- the URL ledger ----------------------------------------------------------------------

def record_new_urls(conn: psycopg.Connection, feed_id: int | None,
                    entries: Sequence[tuple[str, datetime | None, datetime | None]],
                    refresh_min_age: float = 0.0) -> list[int]:
    """Record the (url, published, updated) entries of a feed; returns the ids of the URLs
    to fetch: those not seen before, and stored articles whose entry shows an update newer
    than the last one seen, once their last fetch is `refresh_min_age` seconds old."""
    if not entries:
        return []
    rows = conn.execute(
        """INSERT INTO urls (url, feed_id, entry_published_at, entry_updated_at)
           SELECT * FROM unnest(%(urls)s::text[], %(feed)s::bigint[],
                                %(published)s::timestamptz[], %(updated)s::timestamptz[])
                         AS e(url, feed_id, published, updated)
           -- An article's URL whose ledger row was pruned is not new (article_urls stays).
           WHERE NOT EXISTS (SELECT 1 FROM article_urls au WHERE au.url = e.url)
              OR EXISTS (SELECT 1 FROM urls WHERE urls.url = e.url)
           ON CONFLICT (url) DO UPDATE SET state = 'queued', reason = NULL, detail = NULL,
               attempts = 0, deliveries = 0, updated_at = now(),
               entry_updated_at = EXCLUDED.entry_updated_at
           WHERE urls.state = 'stored'
             AND EXCLUDED.entry_updated_at > coalesce(urls.entry_updated_at, '-infinity')
             AND urls.updated_at <= now() - make_interval(secs => %(min_age)s)
           RETURNING id""",
        {"urls": [e[0] for e in entries], "feed": [feed_id] * len(entries),
         "published": [e[1] for e in entries], "updated": [e[2] for e in entries],
         "min_age": refresh_min_age}).fetchall()
    return [r["id"] for r in rows]


def get_url(conn: psycopg.Connection, url_id: int) -> dict | None:
    """A URL of the ledger, with its feed's politeness settings."""
    return conn.execute(
        """SELECT u.*, f.url AS feed_url, f.host_delay_seconds,
                  coalesce(f.obey_robots, true) AS obey_robots
           FROM urls u LEFT JOIN feeds f ON f.id = u.feed_id WHERE u.id = %s""",
        (url_id,)).fetchone()


def save_raw_page(conn: psycopg.Connection, url_id: int, *, final_url: str,
                  content_type: str | None, html_zlib: bytes) -> None:
    """Keep a fetched page and move its URL on to 'fetched': one statement."""
    conn.execute(
        """WITH page AS (
               INSERT INTO raw_pages (url_id, final_url, content_type, html_zlib)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (url_id) DO UPDATE SET final_url = EXCLUDED.final_url,
                   content_type = EXCLUDED.content_type, html_zlib = EXCLUDED.html_zlib,
                   fetched_at = now()
               RETURNING url_id)
           UPDATE urls SET state = 'fetched', updated_at = now()
           WHERE id = (SELECT url_id FROM page) AND state = 'queued'""",
        (url_id, final_url, content_type, html_zlib))


def count_attempt(conn: psycopg.Connection, url_id: int) -> int:
    """One more failed attempt for this URL; returns how many it has had."""
    row = conn.execute(
        """UPDATE urls SET attempts = attempts + 1, updated_at = now() WHERE id = %s
           RETURNING attempts""", (url_id,)).fetchone()
    return row["attempts"] if row else 1


def start_processing(conn: psycopg.Connection, url_id: int) -> dict | None:
    """A fetched URL with its kept page, counting this start in `deliveries`; None when
    the URL is not waiting to be processed. One statement: this runs once per article."""
    return conn.execute(
        """UPDATE urls u SET deliveries = u.deliveries + 1
           FROM raw_pages r
           WHERE u.id = %s AND u.state = 'fetched' AND r.url_id = u.id
           RETURNING u.id, u.id AS url_id, u.url, u.feed_id, u.entry_published_at, u.deliveries,
                     (SELECT f.url FROM feeds f WHERE f.id = u.feed_id) AS feed_url,
                     r.final_url, r.html_zlib, r.fetched_at""",
        (url_id,)).fetchone()


def finish_url(conn: psycopg.Connection, url_id: int, state: str, reason: str | None = None,
               detail: str | None = None, article_id: int | None = None) -> None:
    """Give a URL its final outcome (the caller's transaction, if any, includes it).

    Only a URL in flight changes: a late duplicate delivery cannot overwrite an outcome.
    Any outcome but 'dead' resolves the URL's open dead letter: its replay worked.
    """
    assert state in FINAL_STATES, state
    conn.execute(
        """WITH changed AS (
               UPDATE urls SET state = %(state)s, reason = %(reason)s, detail = %(detail)s,
                   article_id = %(article_id)s, updated_at = now()
               WHERE id = %(id)s AND state IN ('queued', 'fetched') RETURNING id)
           UPDATE dead_letters SET resolved_at = now(), resolution = 'replayed'
           WHERE %(state)s <> 'dead' AND resolved_at IS NULL
             AND url_id IN (SELECT id FROM changed)""",
        {"state": state, "reason": reason, "detail": detail, "article_id": article_id,
         "id": url_id})


def stale_in_flight(conn: psycopg.Connection, older_than: float, limit: int) -> list[dict]:
    """In-flight URLs untouched for `older_than` seconds: their message may have been lost."""
    return conn.execute(
        """UPDATE urls SET updated_at = now()
           FROM (SELECT id FROM urls WHERE state IN ('queued', 'fetched')
                 AND updated_at < now() - make_interval(secs => %s)
                 ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED) stale
           WHERE urls.id = stale.id RETURNING urls.id, urls.state""",
        (older_than, limit)).fetchall()


def outcome_counts(conn: psycopg.Connection) -> dict[str, int]:
    """URLs by state, from the counters (url_counts) rather than a count of every row."""
    rows = conn.execute(
        """SELECT state, sum(n)::bigint AS n FROM url_counts GROUP BY state
           HAVING sum(n) <> 0""").fetchall()
    return {r["state"]: r["n"] for r in rows}


# --- articles ----------------------------------------------------------------------------

# The columns an article's page determines: written when it is stored, replaced when a
# later fetch of its URL changes the text or `newsloom reprocess` extracts it again.
ARTICLE_CONTENT = ("title", "author", "published_at", "language", "text", "site_name",
                   "description", "image_url", "tags", "fetched_at", "extractor",
                   "content_hash", "minhash", "lsh_bands", "entities_skipped", "page_url_id")


def find_article_candidates(conn: psycopg.Connection, *, canonical_url: str,
                            content_hash: str, minhash: list[int], lsh_bands: list[int],
                            min_agreement: int, limit: int = 20) -> list[dict]:
    """Stored articles this page may be: the same canonical URL, the same text hash, or a
    shared LSH band; URL and hash matches first, then the most agreeing MinHash values. A
    row's text is read only when its URL or hash match, or when at least `min_agreement`
    of the MinHash values agree.

    First takes transaction-scoped locks on the page's keys, so two workers storing copies
    of one story at the same moment take turns and the second sees the first.
    """
    keys = sorted({*lsh_bands, _lock_key(canonical_url), _lock_key(content_hash)})
    # For this transaction only, no sequential scans: without statistics on lsh_bands (a
    # new table, or autovacuum off) the planner guesses many overlaps and would read the
    # whole table for every article instead of the GIN index.
    conn.execute(
        """SELECT set_config('enable_seqscan', 'off', true),
                  (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k)
                                         FROM unnest(%s::bigint[]) AS k) locked)""",
        (keys,))
    return conn.execute(
        """SELECT id, url, canonical_url, content_hash, fetched_at,
                  CASE WHEN canonical_url = %(c)s OR content_hash = %(h)s OR agreement >= %(a)s
                       THEN text END AS text
           FROM (SELECT *, (SELECT count(*) FROM unnest(minhash, %(m)s::bigint[]) AS v(x, y)
                            WHERE x = y) AS agreement
                 FROM articles
                 WHERE canonical_url = %(c)s OR content_hash = %(h)s
                    OR lsh_bands && %(b)s::bigint[]) found
           ORDER BY canonical_url = %(c)s DESC, content_hash = %(h)s DESC, agreement DESC, id
           LIMIT %(n)s""",
        {"c": canonical_url, "h": content_hash, "m": minhash, "b": lsh_bands,
         "a": min_agreement, "n": limit}).fetchall()


def _lock_key(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big",
                          signed=True)


def store_article(conn: psycopg.Connection, *, url_id: int, url: str, feed_id: int | None,
                  canonical_url: str, content: dict, entities: Iterable[tuple[str, str, int]],
                  existing: dict | None, replace_content: bool) -> tuple[str, int]:
    """Store a new article (`existing` None) or attach `url` to `existing`, replacing its
    content when `replace_content`; then give the URL its outcome. Runs in the caller's
    transaction, after find_article_candidates.

    Returns (outcome, article_id): 'stored' when the URL is the article's own, else
    'duplicate'. Running it again for the same URL gives the same answer and rows.
    """
    if existing is None:
        columns = ("url", "canonical_url", "feed_id", *ARTICLE_CONTENT)
        row = conn.execute(
            sql.SQL("INSERT INTO articles ({}) VALUES ({}) ON CONFLICT DO NOTHING RETURNING id")
            .format(sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(map(sql.Placeholder, columns))),
            {**content, "url": url, "canonical_url": canonical_url, "feed_id": feed_id},
        ).fetchone()
        if row is None:  # only a concurrent reprocess gets here: the next try sees it
            raise Transient(f"article {canonical_url} was changed while this one was stored")
        article_id = row["id"]
        _store_entities(conn, article_id, entities)
    else:
        article_id = existing["id"]
        if replace_content:
            replace_article_content(conn, article_id, content, entities, updated=True)
    outcome = "stored" if existing is None or existing["url"] == url else "duplicate"
    conn.execute(
        """INSERT INTO article_urls (url, article_id, feed_id) VALUES (%s, %s, %s)
           ON CONFLICT (url) DO NOTHING""",
        (url, article_id, feed_id))
    finish_url(conn, url_id, outcome, article_id=article_id)
    return outcome, article_id


def articles_to_reprocess(conn: psycopg.Connection, extractor: str | None) -> list[int]:
    """Ids of the articles extracted by another extractor than `extractor` (all if None)
    whose page is still kept (see articles_without_kept_page)."""
    rows = conn.execute(
        """SELECT a.id FROM articles a
           WHERE (%(x)s::text IS NULL OR a.extractor <> %(x)s)
             AND EXISTS (SELECT 1 FROM raw_pages r WHERE r.url_id = a.page_url_id)
           ORDER BY a.id""",
        {"x": extractor}).fetchall()
    return [r["id"] for r in rows]


def load_article_page(conn: psycopg.Connection, article_id: int) -> dict | None:
    """The kept page that holds an article's current text."""
    return conn.execute(
        """SELECT u.id AS url_id, r.final_url, r.html_zlib, r.fetched_at, u.entry_published_at
           FROM articles a JOIN urls u ON u.id = a.page_url_id
           JOIN raw_pages r ON r.url_id = u.id
           WHERE a.id = %s""", (article_id,)).fetchone()


def replace_article_content(conn: psycopg.Connection, article_id: int, content: dict,
                            entities: Iterable[tuple[str, str, int]], *, updated: bool) -> bool:
    """Replace an article's content and entities (`updated`: because its page changed);
    False, with nothing changed, when the new text is another article's."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in ARTICLE_CONTENT)
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("""UPDATE articles SET {},
                               updated_at = CASE WHEN %(updated)s THEN now() ELSE updated_at END
                           WHERE id = %(id)s""").format(assignments),
                {**content, "updated": updated, "id": article_id})
            conn.execute("DELETE FROM article_entities WHERE article_id = %s", (article_id,))
            _store_entities(conn, article_id, entities)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def _store_entities(conn: psycopg.Connection, article_id: int,
                    entities: Iterable[tuple[str, str, int]]) -> None:
    # Sorted, so two transactions upserting the same entities lock them in the same order.
    entities = sorted(entities)
    if not entities:
        return
    names, labels, mentions = (list(col) for col in zip(*entities))
    conn.execute(
        """INSERT INTO entities (name, label)
           SELECT n, l FROM unnest(%s::text[], %s::text[]) AS e(n, l)
           ON CONFLICT (name, label) DO NOTHING""",
        (names, labels))
    conn.execute(
        """INSERT INTO article_entities (article_id, entity_id, mentions)
           SELECT %s, entities.id, e.m
           FROM unnest(%s::text[], %s::text[], %s::int[]) AS e(n, l, m)
           JOIN entities ON entities.name = e.n AND entities.label = e.l
           ON CONFLICT (article_id, entity_id) DO UPDATE SET mentions = EXCLUDED.mentions""",
        (article_id, names, labels, mentions))


# --- dead letters ------------------------------------------------------------------------

def add_dead_letter(conn: psycopg.Connection, *, task: str, payload: dict, url_id: int | None,
                    error_class: str, error: str, traceback: str, attempts: int) -> None:
    """Record a task that failed for good, and end its URL as 'dead'; one transaction.

    A URL has at most one open dead letter: failing again after a replay updates it.
    """
    conn.execute(
        """INSERT INTO dead_letters (task, payload, url_id, error_class, error, traceback,
               attempts)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (url_id) WHERE resolved_at IS NULL DO UPDATE
           SET task = EXCLUDED.task, error_class = EXCLUDED.error_class,
               error = EXCLUDED.error, traceback = EXCLUDED.traceback,
               attempts = EXCLUDED.attempts, last_failed_at = now()""",
        (task, json.dumps(payload), url_id, error_class, error, traceback, attempts))
    if url_id is not None:
        finish_url(conn, url_id, "dead", reason=error_class, detail=error[:500])


def list_dead_letters(conn: psycopg.Connection, *, error: str | None = None,
                      feed: str | None = None, include_resolved: bool = False,
                      limit: int = 1000) -> list[dict]:
    """Dead letters, newest failure first; `error` matches the class or message, `feed`
    the feed's URL, name or id."""
    return conn.execute(
        """SELECT d.id, d.task, d.url_id, u.url, f.id AS feed_id, f.name AS feed_name,
                  f.url AS feed_url, d.error_class, d.error, d.attempts, d.replays,
                  d.first_failed_at, d.last_failed_at, d.resolved_at, d.resolution
           FROM dead_letters d
           LEFT JOIN urls u ON u.id = d.url_id
           LEFT JOIN feeds f ON f.id = u.feed_id
           WHERE (%(all)s OR d.resolved_at IS NULL)
             AND (%(error)s::text IS NULL OR d.error_class ILIKE %(error)s OR d.error ILIKE
                  '%%' || %(error)s || '%%')
             AND (%(feed)s::text IS NULL OR f.url = %(feed)s OR f.name = %(feed)s
                  OR f.id::text = %(feed)s)
           ORDER BY d.last_failed_at DESC, d.id DESC LIMIT %(limit)s""",
        {"all": include_resolved, "error": error, "feed": feed, "limit": limit}).fetchall()


def get_dead_letter(conn: psycopg.Connection, letter_id: int) -> dict | None:
    return conn.execute(
        """SELECT d.*, u.url, u.state AS url_state, f.url AS feed_url, f.name AS feed_name
           FROM dead_letters d LEFT JOIN urls u ON u.id = d.url_id
           LEFT JOIN feeds f ON f.id = u.feed_id WHERE d.id = %s""",
        (letter_id,)).fetchone()


def replay_dead_letters(conn: psycopg.Connection, letter_ids: Sequence[int]) -> list[dict]:
    """Put the URLs of these open dead letters back in flight; returns (url_id, state) to
    enqueue. A page already fetched goes straight back to processing."""
    return conn.execute(
        """WITH letters AS (
               UPDATE dead_letters SET replays = replays + 1
               WHERE id = ANY(%s) AND resolved_at IS NULL RETURNING url_id)
           UPDATE urls SET state = CASE WHEN EXISTS (
                   SELECT 1 FROM raw_pages r WHERE r.url_id = urls.id)
                   THEN 'fetched' ELSE 'queued' END,
               reason = NULL, detail = NULL, attempts = 0, deliveries = 0,
               updated_at = now()
           FROM letters WHERE urls.id = letters.url_id AND urls.state = 'dead'
           RETURNING urls.id AS url_id, urls.state""",
        (list(letter_ids),)).fetchall()


def discard_dead_letters(conn: psycopg.Connection, letter_ids: Sequence[int]) -> int:
    """Close these dead letters without replaying; their URLs stay dead."""
    return conn.execute(
        """UPDATE dead_letters SET resolved_at = now(), resolution = 'discarded'
           WHERE id = ANY(%s) AND resolved_at IS NULL""",
        (list(letter_ids),)).rowcount


# --- search ------------------------------------------------------------------------------

# Searched in turn until one holds `limit` matches: the best matches of the most recent
# window that has enough. Ranking reads every match's tsvector, and a common word matches a
# large share of all articles: unbounded, a search would slow down as the collection grows.
SEARCH_WINDOWS = ("1 day", "7 days", "30 days", "365 days", None)


def search_articles(conn: psycopg.Connection, words: str, limit: int = 10) -> list[dict]:
    """Best matches for web-search-style `words` ("quoted phrases", -exclusions, or), from
    the most recent window of SEARCH_WINDOWS that holds `limit` of them."""
    rows: list[dict] = []
    for window in SEARCH_WINDOWS:
        rows = conn.execute(
            """SELECT a.id, a.title, a.url, coalesce(a.published_at, a.fetched_at) AS published_at,
                      round(ts_rank_cd(a.search, query.q)::numeric, 4) AS rank,
                      ts_headline('english', a.text, query.q,
                                  'MaxWords=30, MinWords=15, MaxFragments=1, '
                                  'StartSel=«, StopSel=»') AS snippet
               -- English articles are indexed stemmed, the others as they are: match either.
               FROM articles a, (SELECT websearch_to_tsquery('english', %(w)s)
                                        || websearch_to_tsquery('simple', %(w)s) AS q) query
               WHERE a.search @@ query.q
                 AND (%(window)s::interval IS NULL
                      OR a.created_at > now() - %(window)s::interval)
               ORDER BY rank DESC, a.id DESC LIMIT %(limit)s""",
            {"w": words, "limit": limit, "window": window}).fetchall()
        if len(rows) >= limit:
            break
    return rows


# --- status ------------------------------------------------------------------------------

def status_report(conn: psycopg.Connection) -> dict:
    """Outcome counts (total and last hour), open dead letters by error, feed health.

    Totals come from the counters kept by triggers (url_counts, article_counts); the last
    hours are read through time indexes: neither grows with the collection."""
    outcomes = conn.execute(
        """SELECT c.state, nullif(c.reason, '') AS reason, c.total,
                  coalesce(h.last_hour, 0) AS last_hour
           FROM (SELECT state, reason, sum(n)::bigint AS total FROM url_counts
                 GROUP BY state, reason HAVING sum(n) <> 0) c
           LEFT JOIN (SELECT state, coalesce(reason, '') AS reason, count(*) AS last_hour
                      FROM urls WHERE updated_at > now() - interval '1 hour'
                      GROUP BY 1, 2) h USING (state, reason)
           ORDER BY c.state, c.total DESC""").fetchall()
    dead = conn.execute(
        """SELECT error_class, count(*) AS n FROM dead_letters WHERE resolved_at IS NULL
           GROUP BY error_class ORDER BY n DESC""").fetchall()
    feeds = conn.execute(
        """SELECT (SELECT count(*) FROM feeds WHERE active) AS active,
                  (SELECT count(*) FROM feeds WHERE active AND consecutive_errors > 0)
                  AS failing""").fetchone()
    failing = conn.execute(
        """SELECT url, name, consecutive_errors, last_error, last_success_at, next_check_at
           FROM feeds WHERE active AND consecutive_errors > 0
           ORDER BY consecutive_errors DESC, url LIMIT 20""").fetchall()
    articles = conn.execute(
        """SELECT (SELECT coalesce(sum(n), 0)::bigint FROM article_counts) AS total,
                  (SELECT count(*) FROM articles
                   WHERE created_at > now() - interval '1 hour') AS last_hour""").fetchone()
    per_hour = conn.execute(
        """SELECT h.hour, count(a.id) AS stored
           FROM generate_series(date_trunc('hour', now()) - interval '5 hours',
                                date_trunc('hour', now()), interval '1 hour') AS h(hour)
           LEFT JOIN articles a
                  ON a.created_at >= h.hour AND a.created_at < h.hour + interval '1 hour'
           GROUP BY 1 ORDER BY 1 DESC""").fetchall()
    return {"outcomes": outcomes, "dead_letters": dead,
            "feeds": {**feeds, "failing_feeds": failing},
            "articles": {**articles, "per_hour": per_hour}}


# --- retention (newsloom prune) and counters --------------------------------------------
#
# Prune deletes in batches, each its own short transaction that locks only the rows it
# deletes (SKIP LOCKED: a row the pipeline holds waits for the next run), walking the time
# index from the oldest row with a keyset cursor, so each run visits a row once.
# What stays: pages and ledger rows of URLs in flight or with an open dead letter, and a
# ledger row whose kept page holds an article's text (reprocess reads it by page_url_id).

# The oldest possible cursor: (time, id) before every row.
PRUNE_START: tuple[datetime | str, int] = ("-infinity", 0)

_PRUNABLE_PAGES = """
    FROM raw_pages r JOIN urls u ON u.id = r.url_id
    WHERE r.fetched_at < now() - make_interval(secs => %(keep)s)
      AND (r.fetched_at, r.url_id) > (%(after_at)s::timestamptz, %(after_id)s)
      AND u.state NOT IN ('queued', 'fetched')
      AND NOT EXISTS (SELECT 1 FROM dead_letters d
                      WHERE d.url_id = u.id AND d.resolved_at IS NULL)"""

_PRUNABLE_URLS = """
    FROM urls u
    WHERE u.updated_at < now() - make_interval(secs => %(keep)s)
      AND (u.updated_at, u.id) > (%(after_at)s::timestamptz, %(after_id)s)
      AND u.state NOT IN ('queued', 'fetched')
      AND NOT EXISTS (SELECT 1 FROM dead_letters d
                      WHERE d.url_id = u.id AND d.resolved_at IS NULL)
      AND NOT (EXISTS (SELECT 1 FROM articles a WHERE a.page_url_id = u.id)
               AND EXISTS (SELECT 1 FROM raw_pages r WHERE r.url_id = u.id))"""


@dataclass(frozen=True)
class PruneBatch:
    rows: int
    page_bytes: int                       # compressed page bytes removed with them
    last: tuple[datetime | str, int]      # the cursor for the next batch


def prune_raw_pages(conn: psycopg.Connection, keep_seconds: float,
                    after: tuple[datetime | str, int], limit: int) -> PruneBatch:
    """Delete up to `limit` kept pages fetched `keep_seconds` ago or earlier, after the
    cursor `after` (fetched_at, url_id); one transaction."""
    rows = conn.execute(
        f"""WITH doomed AS (
                SELECT r.url_id {_PRUNABLE_PAGES}
                ORDER BY r.fetched_at, r.url_id LIMIT %(n)s
                FOR UPDATE OF r SKIP LOCKED FOR NO KEY UPDATE OF u SKIP LOCKED)
            DELETE FROM raw_pages r USING doomed WHERE r.url_id = doomed.url_id
            RETURNING r.fetched_at AS at, r.url_id AS id, octet_length(r.html_zlib) AS bytes""",
        {"keep": keep_seconds, "after_at": after[0], "after_id": after[1], "n": limit}).fetchall()
    return _batch(rows, after)


def prune_urls(conn: psycopg.Connection, keep_seconds: float,
               after: tuple[datetime | str, int], limit: int) -> PruneBatch:
    """Delete up to `limit` finished ledger rows untouched for `keep_seconds`, after the
    cursor `after` (updated_at, id); one transaction. Their pages and resolved dead letters
    go with them; an article whose page row goes has page_url_id NULL."""
    rows = conn.execute(
        f"""WITH doomed AS (
                SELECT u.id {_PRUNABLE_URLS}
                ORDER BY u.updated_at, u.id LIMIT %(n)s FOR UPDATE OF u SKIP LOCKED),
            pages AS (SELECT coalesce(sum(octet_length(r.html_zlib)), 0)::bigint AS bytes
                      FROM raw_pages r JOIN doomed ON doomed.id = r.url_id)
            DELETE FROM urls u USING doomed WHERE u.id = doomed.id
            RETURNING u.updated_at AS at, u.id, (SELECT bytes FROM pages) AS bytes""",
        {"keep": keep_seconds, "after_at": after[0], "after_id": after[1], "n": limit}).fetchall()
    return _batch(rows, after, pages_once=True)


def _batch(rows: list[dict], after: tuple[datetime | str, int],
           pages_once: bool = False) -> PruneBatch:
    if not rows:
        return PruneBatch(0, 0, after)
    last = max((r["at"], r["id"]) for r in rows)
    page_bytes = rows[0]["bytes"] if pages_once else sum(r["bytes"] for r in rows)
    return PruneBatch(len(rows), int(page_bytes), last)


def count_prunable(conn: psycopg.Connection, raw_pages_keep: float | None,
                   urls_keep: float | None) -> dict[str, int]:
    """What a prune would remove now (--dry-run): pages and their bytes, ledger rows.
    Ledger rows count as today: a page the same run removes first may free a few more."""
    start = {"after_at": PRUNE_START[0], "after_id": PRUNE_START[1]}
    counts = {"raw_pages": 0, "raw_page_bytes": 0, "urls": 0}
    if raw_pages_keep is not None:
        row = conn.execute(
            f"""SELECT count(*) AS n, coalesce(sum(octet_length(r.html_zlib)), 0)::bigint AS b
                {_PRUNABLE_PAGES}""", {**start, "keep": raw_pages_keep}).fetchone()
        counts.update(raw_pages=row["n"], raw_page_bytes=row["b"])
    if urls_keep is not None:
        counts["urls"] = conn.execute(f"SELECT count(*) AS n {_PRUNABLE_URLS}",
                                      {**start, "keep": urls_keep}).fetchone()["n"]
    return counts


def articles_without_kept_page(conn: psycopg.Connection, extractor: str | None) -> int:
    """How many articles reprocess cannot redo (extracted by another extractor than
    `extractor`, all if None): their kept page was pruned."""
    return conn.execute(
        """SELECT count(*) AS n FROM articles a
           WHERE (%(x)s::text IS NULL OR a.extractor <> %(x)s)
             AND NOT EXISTS (SELECT 1 FROM raw_pages r WHERE r.url_id = a.page_url_id)""",
        {"x": extractor}).fetchone()["n"]


def try_lock_prune(conn: psycopg.Connection) -> bool:
    """Take this session's prune lock, False when another session holds it: prunes on
    several schedulers (and a manual one) never run at once."""
    return conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_PRUNE_LOCK,)).fetchone()["ok"]


def unlock_prune(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (_PRUNE_LOCK,))


_PRUNE_LOCK = 0x6E6C_7072  # advisory lock id of prune


def claim_maintenance(conn: psycopg.Connection, task: str, every_seconds: float) -> bool:
    """True when `task` last ran `every_seconds` ago or never, and records that it runs now:
    of several schedulers, one runs it per period."""
    return conn.execute(
        """INSERT INTO maintenance_runs AS m (task, last_run_at) VALUES (%s, now())
           ON CONFLICT (task) DO UPDATE SET last_run_at = now()
           WHERE m.last_run_at <= now() - make_interval(secs => %s)
           RETURNING task""", (task, every_seconds)).fetchone() is not None


def recount_urls(conn: psycopg.Connection) -> dict[tuple[str, str | None], int]:
    """URLs by (state, reason), counted row by row: the check of the counters."""
    rows = conn.execute("SELECT state, reason, count(*) AS n FROM urls GROUP BY 1, 2").fetchall()
    return {(r["state"], r["reason"]): r["n"] for r in rows}


def counted_urls(conn: psycopg.Connection) -> dict[tuple[str, str | None], int]:
    """URLs by (state, reason), from the counters."""
    rows = conn.execute(
        """SELECT state, nullif(reason, '') AS reason, sum(n)::bigint AS n FROM url_counts
           GROUP BY 1, 2 HAVING sum(n) <> 0""").fetchall()
    return {(r["state"], r["reason"]): r["n"] for r in rows}
