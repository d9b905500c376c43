"""All SQL lives here. Every statement is parameterised; every write is idempotent.

Connections are in autocommit mode, so a statement costs one round trip; a function that
writes more than once wraps its statements in a transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb, set_json_loads

from newsloom.errors import Transient

if TYPE_CHECKING:
    # Imported where a pool is made: the commands that open one connection start faster.
    from psycopg_pool import ConnectionPool


class UrlState(StrEnum):
    """A URL's place in the ledger (`urls.state`, the same text): in flight, then one
    final outcome."""

    QUEUED = "queued"  # recorded, waiting to be fetched
    FETCHED = "fetched"  # its page kept, waiting to be processed
    STORED = "stored"  # an article of its own
    DUPLICATE = "duplicate"  # attached to an article stored before
    SKIPPED = "skipped"  # ended with a reason (404, not HTML, robots.txt, ...)
    DEAD = "dead"  # dead-lettered


# newsloom's queries are short and bounded: no JIT compilation and no parallel workers.
# On large tables the planner's estimates (an array overlap guessed at 28,000 rows where
# there are none) made the store step start two parallel workers and other queries compile
# for longer (0.5-1.5 s) than they ran.
_SESSION_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0"

IN_FLIGHT = (UrlState.QUEUED, UrlState.FETCHED)
FINAL_STATES = (UrlState.STORED, UrlState.DUPLICATE, UrlState.SKIPPED, UrlState.DEAD)

# Every connection newsloom opens returns rows as dicts.
Connection = psycopg.Connection[DictRow]
Pool: TypeAlias = "ConnectionPool[Connection]"


def connect(url: str, connect_timeout: int = 10) -> Connection:
    return psycopg.connect(
        url,
        row_factory=dict_row,
        autocommit=True,
        connect_timeout=connect_timeout,
        options=_SESSION_OPTIONS,
    )


def make_pool(url: str, max_size: int = 4) -> Pool:
    """A pool whose connections are checked before use, so a restarted Postgres is survived."""
    from psycopg_pool import ConnectionPool

    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=True,
        connection_class=Connection,
        kwargs={"row_factory": dict_row, "autocommit": True, "options": _SESSION_OPTIONS},
        check=ConnectionPool.check_connection,
        name="newsloom",
    )


def _one(cursor: psycopg.Cursor[DictRow]) -> DictRow:
    """The row of a statement that always returns one (an aggregate, a RETURNING insert)."""
    row = cursor.fetchone()
    assert row is not None
    return row


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
    source_type: str | None = None
    include_pattern: str | None = None
    exclude_pattern: str | None = None
    since_seconds: float | None = None
    first_polled_at: datetime | None = None
    sitemaps_read_until: datetime | None = None


def sync_feeds(conn: Connection, feeds: Sequence[tuple[Any, ...]]) -> None:
    """Make the `feeds` table match the feeds file: (url, name, interval_seconds,
    host_delay_seconds, obey_robots[, source_type, include_pattern, exclude_pattern,
    since_seconds]) each; the last four are NULL when left out.

    Feeds no longer in the file become inactive (their articles stay); a feed added back
    is active again and keeps its history.
    """
    urls = [f[0] for f in feeds]
    with conn.transaction():
        conn.cursor().executemany(
            """INSERT INTO feeds (url, name, interval_seconds, host_delay_seconds, obey_robots,
                                  source_type, include_pattern, exclude_pattern, since_seconds)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (url) DO UPDATE SET name = EXCLUDED.name,
                   interval_seconds = EXCLUDED.interval_seconds,
                   host_delay_seconds = EXCLUDED.host_delay_seconds,
                   obey_robots = EXCLUDED.obey_robots, active = true,
                   -- New rules for what to take: the next poll reads the document whole.
                   etag = CASE WHEN (feeds.source_type, feeds.include_pattern,
                                     feeds.exclude_pattern, feeds.since_seconds)
                               IS NOT DISTINCT FROM (EXCLUDED.source_type,
                                     EXCLUDED.include_pattern, EXCLUDED.exclude_pattern,
                                     EXCLUDED.since_seconds) THEN feeds.etag END,
                   last_modified = CASE WHEN (feeds.source_type, feeds.include_pattern,
                                     feeds.exclude_pattern, feeds.since_seconds)
                               IS NOT DISTINCT FROM (EXCLUDED.source_type,
                                     EXCLUDED.include_pattern, EXCLUDED.exclude_pattern,
                                     EXCLUDED.since_seconds) THEN feeds.last_modified END,
                   source_type = EXCLUDED.source_type,
                   include_pattern = EXCLUDED.include_pattern,
                   exclude_pattern = EXCLUDED.exclude_pattern,
                   since_seconds = EXCLUDED.since_seconds
               WHERE (feeds.name, feeds.interval_seconds, feeds.host_delay_seconds,
                      feeds.obey_robots, feeds.active, feeds.source_type, feeds.include_pattern,
                      feeds.exclude_pattern, feeds.since_seconds)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.interval_seconds,
                      EXCLUDED.host_delay_seconds, EXCLUDED.obey_robots, true,
                      EXCLUDED.source_type, EXCLUDED.include_pattern, EXCLUDED.exclude_pattern,
                      EXCLUDED.since_seconds)""",
            [(*f, *(None,) * (9 - len(f))) for f in feeds],
        )
        conn.execute(
            "UPDATE feeds SET active = false WHERE active AND NOT (url = ANY(%s))", (urls,)
        )


def claim_due_feeds(conn: Connection, limit: int, lease_seconds: float) -> list[FeedRow]:
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
                     feeds.last_modified, feeds.consecutive_errors, feeds.poll_every_seconds,
                     feeds.source_type, feeds.include_pattern, feeds.exclude_pattern,
                     feeds.since_seconds, feeds.first_polled_at, feeds.sitemaps_read_until""",
        (lease_seconds, limit),
    ).fetchall()
    return [FeedRow(**r) for r in rows]


def record_poll_success(
    conn: Connection,
    feed_id: int,
    *,
    etag: str | None,
    last_modified: str | None,
    poll_every: float,
    next_in: float,
    items: int,
    rejected_links: int,
    kind: str | None = None,
    note: str | None = None,
    sitemaps_read_until: datetime | None = None,
) -> None:
    """A poll went through; a 304 (kind None) keeps the kind and note found before."""
    conn.execute(
        """UPDATE feeds SET etag = %s, last_modified = %s, last_checked_at = now(),
               last_success_at = now(), consecutive_errors = 0, poll_every_seconds = %s,
               next_check_at = now() + make_interval(secs => %s),
               items_seen = items_seen + %s, rejected_links = %s,
               first_polled_at = coalesce(first_polled_at, now()),
               kind = coalesce(%s, kind),
               last_poll_note = CASE WHEN %s::text IS NULL THEN last_poll_note ELSE %s END,
               sitemaps_read_until = coalesce(%s, sitemaps_read_until)
           WHERE id = %s""",
        (
            etag,
            last_modified,
            poll_every,
            next_in,
            items,
            rejected_links,
            kind,
            kind,
            note,
            sitemaps_read_until,
            feed_id,
        ),
    )


def record_poll_failure(conn: Connection, feed_id: int, *, error: str, next_in: float) -> None:
    conn.execute(
        """UPDATE feeds SET last_checked_at = now(), last_error = %s, last_error_at = now(),
               consecutive_errors = consecutive_errors + 1,
               next_check_at = now() + make_interval(secs => %s)
           WHERE id = %s""",
        (error, next_in, feed_id),
    )


def list_feeds(conn: Connection, limit: int | None = None) -> list[dict]:
    """Feeds by id; the first `limit` of them (all if None)."""
    return conn.execute("SELECT * FROM feeds ORDER BY id LIMIT %s", (limit,)).fetchall()


# --- the URL ledger ----------------------------------------------------------------------


def record_new_urls(
    conn: Connection,
    feed_id: int | None,
    entries: Sequence[tuple[str, datetime | None, datetime | None, str | None]],
    refresh_min_age: float = 0.0,
) -> list[int]:
    """Record the (url, published, updated, title) entries of a feed; returns the ids of the URLs
    to fetch: those not seen before, and stored articles whose entry shows an update newer
    than the last one seen, once their last fetch is `refresh_min_age` seconds old."""
    if not entries:
        return []
    rows = conn.execute(
        """INSERT INTO urls (url, feed_id, entry_published_at, entry_updated_at, entry_title)
           SELECT * FROM unnest(%(urls)s::text[], %(feed)s::bigint[],
                                %(published)s::timestamptz[], %(updated)s::timestamptz[],
                                %(titles)s::text[])
                         AS e(url, feed_id, published, updated, title)
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
        {
            "urls": [e[0] for e in entries],
            "feed": [feed_id] * len(entries),
            "published": [e[1] for e in entries],
            "updated": [e[2] for e in entries],
            "titles": [e[3] if len(e) > 3 else None for e in entries],
            "min_age": refresh_min_age,
        },
    ).fetchall()
    return [r["id"] for r in rows]


def get_url(conn: Connection, url_id: int) -> dict | None:
    """A URL of the ledger, with its feed's politeness settings."""
    return conn.execute(
        """SELECT u.*, f.url AS feed_url, f.host_delay_seconds,
                  coalesce(f.obey_robots, true) AS obey_robots
           FROM urls u LEFT JOIN feeds f ON f.id = u.feed_id WHERE u.id = %s""",
        (url_id,),
    ).fetchone()


def save_raw_page(
    conn: Connection,
    url_id: int,
    *,
    final_url: str,
    content_type: str | None,
    html_zlib: bytes,
    status: int | None = None,
    headers: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Keep a fetched page (with its status and response headers, which a WARC record of
    it needs) and move its URL on to 'fetched': one statement."""
    conn.execute(
        """WITH page AS (
               INSERT INTO raw_pages (url_id, final_url, content_type, html_zlib, status,
                                      headers)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (url_id) DO UPDATE SET final_url = EXCLUDED.final_url,
                   content_type = EXCLUDED.content_type, html_zlib = EXCLUDED.html_zlib,
                   status = EXCLUDED.status, headers = EXCLUDED.headers, fetched_at = now()
               RETURNING url_id)
           UPDATE urls SET state = 'fetched', updated_at = now()
           WHERE id = (SELECT url_id FROM page) AND state = 'queued'""",
        (
            url_id,
            final_url,
            content_type,
            html_zlib,
            status,
            None if headers is None else Jsonb([list(h) for h in headers]),
        ),
    )


def count_attempt(conn: Connection, url_id: int) -> int:
    """One more failed attempt for this URL; returns how many it has had."""
    row = conn.execute(
        """UPDATE urls SET attempts = attempts + 1, updated_at = now() WHERE id = %s
           RETURNING attempts""",
        (url_id,),
    ).fetchone()
    return row["attempts"] if row else 1


def start_processing(conn: Connection, url_id: int) -> dict | None:
    """A fetched URL with its kept page, counting this start in `deliveries`; None when
    the URL is not waiting to be processed. One statement: this runs once per article."""
    return conn.execute(
        """UPDATE urls u SET deliveries = u.deliveries + 1
           FROM raw_pages r
           WHERE u.id = %s AND u.state = 'fetched' AND r.url_id = u.id
           RETURNING u.id, u.id AS url_id, u.url, u.feed_id, u.entry_published_at, u.entry_title,
                     u.deliveries,
                     (SELECT f.url FROM feeds f WHERE f.id = u.feed_id) AS feed_url,
                     r.final_url, r.html_zlib, r.fetched_at, u.source,
                     (SELECT i.filters FROM imports i WHERE i.id = u.import_id)
                         AS import_filters""",
        (url_id,),
    ).fetchone()


def finish_url(
    conn: Connection,
    url_id: int,
    state: UrlState,
    reason: str | None = None,
    detail: str | None = None,
    article_id: int | None = None,
) -> None:
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
        {
            "state": state,
            "reason": reason,
            "detail": detail,
            "article_id": article_id,
            "id": url_id,
        },
    )


def stale_in_flight(conn: Connection, older_than: float, limit: int) -> list[dict]:
    """In-flight URLs untouched for `older_than` seconds: their message may have been lost."""
    return conn.execute(
        """UPDATE urls SET updated_at = now()
           FROM (SELECT id FROM urls WHERE state IN ('queued', 'fetched')
                 AND updated_at < now() - make_interval(secs => %s)
                 ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED) stale
           WHERE urls.id = stale.id RETURNING urls.id, urls.state""",
        (older_than, limit),
    ).fetchall()


def outcome_counts(conn: Connection) -> dict[str, int]:
    """URLs by state, from the counters (url_counts) rather than a count of every row."""
    rows = conn.execute(
        """SELECT state, sum(n)::bigint AS n FROM url_counts GROUP BY state
           HAVING sum(n) <> 0"""
    ).fetchall()
    return {r["state"]: r["n"] for r in rows}


# --- articles ----------------------------------------------------------------------------

# The columns an article's page determines: written when it is stored, replaced when a
# later fetch of its URL changes the text or `newsloom reprocess` extracts it again.
ARTICLE_CONTENT = (
    "title",
    "author",
    "published_at",
    "language",
    "text",
    "site_name",
    "description",
    "image_url",
    "tags",
    "fetched_at",
    "extractor",
    "content_hash",
    "minhash",
    "lsh_bands",
    "entities_skipped",
    "page_url_id",
    # article metadata (migration 0003)
    "authors",
    "modified_at",
    "is_paywalled",
    "published_at_source",
    "section",
    "keywords",
    "publisher",
)


def find_article_candidates(
    conn: Connection,
    *,
    canonical_url: str,
    content_hash: str,
    minhash: list[int],
    lsh_bands: list[int],
    min_agreement: int,
    limit: int = 20,
) -> list[dict]:
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
        (keys,),
    )
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
        {
            "c": canonical_url,
            "h": content_hash,
            "m": minhash,
            "b": lsh_bands,
            "a": min_agreement,
            "n": limit,
        },
    ).fetchall()


def _lock_key(value: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(value.encode(), digest_size=8).digest(), "big", signed=True
    )


def store_article(
    conn: Connection,
    *,
    url_id: int,
    url: str,
    feed_id: int | None,
    canonical_url: str,
    content: dict,
    entities: Iterable[tuple[str, str, int]],
    existing: dict | None,
    replace_content: bool,
    source: str = "feed",
) -> tuple[UrlState, int]:
    """Store a new article (`existing` None) or attach `url` to `existing`, replacing its
    content when `replace_content`; then give the URL its outcome. Runs in the caller's
    transaction, after find_article_candidates.

    Returns (outcome, article_id): 'stored' when the URL is the article's own, else
    'duplicate'. Running it again for the same URL gives the same answer and rows.
    """
    if existing is None:
        columns = ("url", "canonical_url", "feed_id", "source", *ARTICLE_CONTENT)
        row = conn.execute(
            sql.SQL(
                "INSERT INTO articles ({}) VALUES ({}) ON CONFLICT DO NOTHING RETURNING id"
            ).format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(map(sql.Placeholder, columns)),
            ),
            {
                **content,
                "url": url,
                "canonical_url": canonical_url,
                "feed_id": feed_id,
                "source": source,
            },
        ).fetchone()
        if row is None:  # only a concurrent reprocess gets here: the next try sees it
            raise Transient(f"article {canonical_url} was changed while this one was stored")
        article_id = row["id"]
        _store_entities(conn, article_id, entities)
    else:
        article_id = existing["id"]
    outcome = UrlState.STORED if existing is None or existing["url"] == url else UrlState.DUPLICATE
    attached = conn.execute(
        """INSERT INTO article_urls (url, article_id, feed_id) VALUES (%s, %s, %s)
           ON CONFLICT (url) DO NOTHING RETURNING id""",
        (url, article_id, feed_id),
    ).fetchone()
    finish_url(conn, url_id, outcome, article_id=article_id)
    # Events last: add_event holds the events lock until this transaction commits.
    if existing is None:
        add_event(conn, "stored", article_id)
    elif replace_content:
        replace_article_content(conn, article_id, content, entities, updated=True)
    if attached is not None and outcome == UrlState.DUPLICATE:  # a copy's URL, attached once
        add_event(conn, "duplicate", article_id)
    return outcome, article_id


def articles_to_reprocess(conn: Connection, extractor: str | None) -> list[int]:
    """Ids of the articles extracted by another extractor than `extractor` (all if None)
    whose page is still kept (see articles_without_kept_page)."""
    rows = conn.execute(
        """SELECT a.id FROM articles a
           WHERE (%(x)s::text IS NULL OR a.extractor <> %(x)s)
             AND EXISTS (SELECT 1 FROM raw_pages r WHERE r.url_id = a.page_url_id)
           ORDER BY a.id""",
        {"x": extractor},
    ).fetchall()
    return [r["id"] for r in rows]


def load_article_page(conn: Connection, article_id: int) -> dict | None:
    """The kept page that holds an article's current text."""
    return conn.execute(
        """SELECT u.id AS url_id, r.final_url, r.html_zlib, r.fetched_at, u.entry_published_at,
                  u.entry_title
           FROM articles a JOIN urls u ON u.id = a.page_url_id
           JOIN raw_pages r ON r.url_id = u.id
           WHERE a.id = %s""",
        (article_id,),
    ).fetchone()


def replace_article_content(
    conn: Connection,
    article_id: int,
    content: dict,
    entities: Iterable[tuple[str, str, int]],
    *,
    updated: bool,
) -> bool:
    """Replace an article's content and entities (`updated`: because its page changed);
    False, with nothing changed, when the new text is another article's.

    An 'updated' event is written with the change when the page changed or the text is
    another than before (a reprocess that finds the same text adds none)."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in ARTICLE_CONTENT
    )
    try:
        with conn.transaction():
            row = conn.execute(
                sql.SQL("""WITH before AS (SELECT content_hash FROM articles
                                           WHERE id = %(id)s FOR UPDATE)
                           UPDATE articles SET {},
                               updated_at = CASE WHEN %(updated)s THEN now() ELSE updated_at END
                           FROM before WHERE articles.id = %(id)s
                           RETURNING before.content_hash AS old_hash""").format(assignments),
                {**content, "updated": updated, "id": article_id},
            ).fetchone()
            conn.execute("DELETE FROM article_entities WHERE article_id = %s", (article_id,))
            _store_entities(conn, article_id, entities)
            if row is not None and (updated or row["old_hash"] != content["content_hash"]):
                add_event(conn, "updated", article_id)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def _store_entities(
    conn: Connection, article_id: int, entities: Iterable[tuple[str, str, int]]
) -> None:
    # Sorted, so two transactions upserting the same entities lock them in the same order.
    entities = sorted(entities)
    if not entities:
        return
    names, labels, mentions = (list(col) for col in zip(*entities, strict=True))
    conn.execute(
        """INSERT INTO entities (name, label)
           SELECT n, l FROM unnest(%s::text[], %s::text[]) AS e(n, l)
           ON CONFLICT (name, label) DO NOTHING""",
        (names, labels),
    )
    conn.execute(
        """INSERT INTO article_entities (article_id, entity_id, mentions)
           SELECT %s, entities.id, e.m
           FROM unnest(%s::text[], %s::text[], %s::int[]) AS e(n, l, m)
           JOIN entities ON entities.name = e.n AND entities.label = e.l
           ON CONFLICT (article_id, entity_id) DO UPDATE SET mentions = EXCLUDED.mentions""",
        (article_id, names, labels, mentions),
    )


# --- dead letters ------------------------------------------------------------------------


def add_dead_letter(
    conn: Connection,
    *,
    task: str,
    payload: dict,
    url_id: int | None,
    error_class: str,
    error: str,
    traceback: str,
    attempts: int,
) -> None:
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
        (task, json.dumps(payload), url_id, error_class, error, traceback, attempts),
    )
    if url_id is not None:
        finish_url(conn, url_id, UrlState.DEAD, reason=error_class, detail=error[:500])


def list_dead_letters(
    conn: Connection,
    *,
    error: str | None = None,
    feed: str | None = None,
    include_resolved: bool = False,
    limit: int = 1000,
) -> list[dict]:
    """Dead letters, newest failure first; `error` matches the class or message, `feed`
    the feed's URL, name or id. `url` is the page's, or the endpoint's for a delivery."""
    return conn.execute(
        """SELECT d.id, d.task, d.url_id, coalesce(u.url, w.url) AS url, f.id AS feed_id,
                  f.name AS feed_name, f.url AS feed_url, d.error_class, d.error, d.attempts,
                  d.replays, d.first_failed_at, d.last_failed_at, d.resolved_at, d.resolution
           FROM dead_letters d
           LEFT JOIN urls u ON u.id = d.url_id
           LEFT JOIN feeds f ON f.id = u.feed_id
           LEFT JOIN webhooks w ON w.id = d.webhook_id  -- a delivery: its endpoint's URL
           WHERE (%(all)s OR d.resolved_at IS NULL)
             AND (%(error)s::text IS NULL OR d.error_class ILIKE %(error)s OR d.error ILIKE
                  '%%' || %(error)s || '%%')
             AND (%(feed)s::text IS NULL OR f.url = %(feed)s OR f.name = %(feed)s
                  OR f.id::text = %(feed)s)
           ORDER BY d.last_failed_at DESC, d.id DESC LIMIT %(limit)s""",
        {"all": include_resolved, "error": error, "feed": feed, "limit": limit},
    ).fetchall()


def get_dead_letter(conn: Connection, letter_id: int) -> dict | None:
    return conn.execute(
        """SELECT d.*, u.url, u.state AS url_state, f.url AS feed_url, f.name AS feed_name
           FROM dead_letters d LEFT JOIN urls u ON u.id = d.url_id
           LEFT JOIN feeds f ON f.id = u.feed_id WHERE d.id = %s""",
        (letter_id,),
    ).fetchone()


def replay_dead_letters(conn: Connection, letter_ids: Sequence[int]) -> list[dict]:
    """Put the URLs of these open dead letters back in flight; returns (url_id, state) to
    enqueue. A page already fetched goes straight back to processing. A webhook delivery
    is marked for its endpoint to send again (state 'deliver', nothing to enqueue)."""
    return conn.execute(
        """WITH letters AS (
               UPDATE dead_letters SET replays = replays + 1,
                   replay_requested_at = CASE WHEN webhook_id IS NOT NULL THEN now() END
               WHERE id = ANY(%s) AND resolved_at IS NULL RETURNING url_id, webhook_id),
           urls_back AS (
               UPDATE urls SET state = CASE WHEN EXISTS (
                       SELECT 1 FROM raw_pages r WHERE r.url_id = urls.id)
                       THEN 'fetched' ELSE 'queued' END,
                   reason = NULL, detail = NULL, attempts = 0, deliveries = 0,
                   updated_at = now()
               FROM letters WHERE urls.id = letters.url_id AND urls.state = 'dead'
               RETURNING urls.id AS url_id, urls.state)
           SELECT url_id, state FROM urls_back
           -- A webhook delivery needs no message: its endpoint's next delivery takes it.
           UNION ALL SELECT NULL, 'deliver' FROM letters WHERE webhook_id IS NOT NULL""",
        (list(letter_ids),),
    ).fetchall()


def discard_dead_letters(conn: Connection, letter_ids: Sequence[int]) -> int:
    """Close these dead letters without replaying; their URLs stay dead."""
    return conn.execute(
        """UPDATE dead_letters SET resolved_at = now(), resolution = 'discarded'
           WHERE id = ANY(%s) AND resolved_at IS NULL""",
        (list(letter_ids),),
    ).rowcount


# --- search ------------------------------------------------------------------------------

# Searched in turn until one holds `limit` matches: the best matches of the most recent
# window that has enough. Ranking reads every match's tsvector, and a common word matches a
# large share of all articles: unbounded, a search would slow down as the collection grows.
SEARCH_WINDOWS = ("1 day", "7 days", "30 days", "365 days", None)


def search_articles(conn: Connection, words: str, limit: int = 10) -> list[dict]:
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
            {"w": words, "limit": limit, "window": window},
        ).fetchall()
        if len(rows) >= limit:
            break
    return rows


# --- status ------------------------------------------------------------------------------


def status_report(conn: Connection) -> dict:
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
           ORDER BY c.state, c.total DESC"""
    ).fetchall()
    dead = conn.execute(
        """SELECT error_class, count(*) AS n FROM dead_letters WHERE resolved_at IS NULL
           GROUP BY error_class ORDER BY n DESC"""
    ).fetchall()
    feeds = _one(
        conn.execute(
            """SELECT (SELECT count(*) FROM feeds WHERE active) AS active,
                  (SELECT count(*) FROM feeds WHERE active AND consecutive_errors > 0)
                  AS failing"""
        )
    )
    failing = conn.execute(
        """SELECT url, name, consecutive_errors, last_error, last_success_at, next_check_at
           FROM feeds WHERE active AND consecutive_errors > 0
           ORDER BY consecutive_errors DESC, url LIMIT 20"""
    ).fetchall()
    articles = _one(
        conn.execute(
            """SELECT (SELECT coalesce(sum(n), 0)::bigint FROM article_counts) AS total,
                  (SELECT count(*) FROM articles
                   WHERE created_at > now() - interval '1 hour') AS last_hour"""
        )
    )
    per_hour = conn.execute(
        """SELECT h.hour, count(a.id) AS stored
           FROM generate_series(date_trunc('hour', now()) - interval '5 hours',
                                date_trunc('hour', now()), interval '1 hour') AS h(hour)
           LEFT JOIN articles a
                  ON a.created_at >= h.hour AND a.created_at < h.hour + interval '1 hour'
           GROUP BY 1 ORDER BY 1 DESC"""
    ).fetchall()
    return {
        "outcomes": outcomes,
        "dead_letters": dead,
        "feeds": {**feeds, "failing_feeds": failing},
        "articles": {**articles, "per_hour": per_hour},
    }


# --- HTTP API (newsloom serve) -----------------------------------------------------------

# An article's date for listing and charts: when it was published, else when it was fetched.
_ARTICLE_DATE = "coalesce(a.published_at, a.fetched_at)"


def make_read_pool(url: str, max_size: int, statement_timeout: float) -> Pool:
    """A pool for the read API: read-only sessions whose every statement is cancelled after
    `statement_timeout` seconds (QueryCanceled); waiting for a free connection is bounded
    by the same time (PoolTimeout).

    No prepared statements: each query is planned with its values, so the optional filters
    written `%(x)s IS NULL OR ...` fold away instead of leaving a generic plan. Times come
    in UTC whatever the server's zone (and psycopg reads them a third faster than in a
    named zone such as Etc/UTC).
    """
    options = (
        f"-c statement_timeout={int(statement_timeout * 1000)} "
        f"-c default_transaction_read_only=on -c timezone=UTC {_SESSION_OPTIONS}"
    )
    from psycopg_pool import ConnectionPool

    # Connections are not checked before use (a round trip per request): one broken by a
    # Postgres restart fails its request (503) and the pool replaces it.
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=True,
        connection_class=Connection,
        timeout=statement_timeout,
        kwargs={
            "row_factory": dict_row,
            "autocommit": True,
            "prepare_threshold": None,
            "options": options,
        },
        # json (each listed article's entities) decoded by orjson: a 50-article page's in
        # ~0.03 ms instead of ~0.2 ms.
        configure=lambda conn: set_json_loads(orjson.loads, conn),
        name="newsloom-api",
    )


def ping(conn: Connection) -> None:
    conn.execute("SELECT 1")


# A full-text query the planner expects to match at least this share of all articles is
# "common": its newest matches are found by walking articles_listing, reading a few times
# `limit` rows. A rarer one is answered from a window of the newest articles expected to
# hold SEARCH_WINDOW_MATCHES times `limit` of its matches: its matches (GIN) and the
# window's rows (articles_listing) are intersected, then sorted. A window that holds too
# few is widened SEARCH_WIDENING times, up to the whole collection.
SEARCH_COMMON_SHARE = 1 / 8
SEARCH_WINDOW_MATCHES = 2
SEARCH_WIDENING = 8
_SEARCH_QUERY = "(websearch_to_tsquery('english', %(q)s) || websearch_to_tsquery('simple', %(q)s))"


@dataclass(frozen=True)
class SearchFacts:
    """What the planner's statistics say of a full-text query: how many articles it should
    match, of how many, and the article dates (published, else fetched) that split the
    collection into equal parts, oldest first. They change only when the table is analysed,
    so a caller may keep them a while."""

    matches: float
    articles: float
    date_quantiles: tuple[datetime, ...]

    def windows(self, limit: int, before: datetime | None) -> Iterator[datetime | None]:
        """The lower date bounds to search from in turn (None: no bound, all articles);
        nothing at all for a common query."""
        if self.matches >= SEARCH_COMMON_SHARE * self.articles:
            return
        parts = len(self.date_quantiles) - 1
        if parts > 0:
            # The share of the collection newer than the cursor, where the window starts.
            newer = sum(bound > before for bound in self.date_quantiles) / parts if before else 0
            # The share of the collection expected to hold enough matches.
            share = SEARCH_WINDOW_MATCHES * limit / max(self.matches, 1.0)
            while newer + share < 1.0:
                yield self.date_quantiles[int((1.0 - newer - share) * parts)]
                share *= SEARCH_WIDENING
        yield None


def search_facts(conn: Connection, q: str) -> SearchFacts:
    """The planner's guess of how many articles match `q`: reliable for common words (the
    statistics list the most frequent ones), low for the others; the articles counted at
    the last analysis and the date quantiles of articles_listing."""
    plan = _one(
        conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM articles WHERE search @@ {_SEARCH_QUERY}",
            {"q": q},
        )
    )
    stats = _one(
        conn.execute(
            """SELECT (SELECT greatest(reltuples, 0) FROM pg_class
                       WHERE oid = 'articles'::regclass) AS articles,
                      (SELECT histogram_bounds::text::timestamptz[] FROM pg_stats
                       WHERE schemaname = current_schema() AND tablename = 'articles_listing'
                       LIMIT 1) AS quantiles"""
        )
    )
    return SearchFacts(
        matches=float(plan["QUERY PLAN"][0]["Plan"]["Plan Rows"]),
        articles=float(stats["articles"]),
        date_quantiles=tuple(stats["quantiles"] or ()),
    )


def list_articles(
    conn: Connection,
    *,
    q: str | None = None,
    feed_id: int | None = None,
    feed_name: str | None = None,
    language: str | None = None,
    entity_id: int | None = None,
    entity_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    with_text: bool = False,
    limit: int = 50,
    facts: SearchFacts | None = None,
) -> list[dict]:
    """Articles newest first (by `published_at`: publication, else fetch time), filtered.

    `q` is a web-search-style query; `feed_name` matches a feed's name or URL, `entity_name`
    an entity's name; `since` inclusive, `until` exclusive. `before` is the keyset cursor:
    the (published_at, id) of the last row of the previous page. Each row has its five most
    mentioned entities. `facts` are `search_facts(conn, q)` when the caller keeps them.
    """
    before_at, before_id = before or (None, None)
    params = {
        "q": q,
        "fid": feed_id,
        "fname": feed_name,
        "lang": language,
        "eid": entity_id,
        "ename": entity_name,
        "since": since,
        "until": until,
        "bat": before_at,
        "bid": before_id,
        "text": with_text,
        "limit": limit,
        "window": None,
    }
    if q is None:
        return _listed_articles(conn, params)
    for window in (facts or search_facts(conn, q)).windows(limit, before_at):
        if window is not None:
            # The bound is a value the planner sees: it intersects the two indexes.
            rows = _listed_articles(conn, {**params, "window": window})
            if len(rows) == limit:
                return rows
            continue
        # All of a rare query's matches (GIN), then sorted: walking articles_listing would
        # read the whole table for them.
        with conn.transaction():
            conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            return _listed_articles(conn, params)
    return _listed_articles(conn, params)  # a common query: the walk


def _listed_articles(conn: Connection, params: dict) -> list[dict]:
    return conn.execute(_ARTICLE_LISTING, params).fetchall()


_ARTICLE_LISTING = f"""SELECT a.id, a.title, a.url, a.canonical_url, a.author,
                   {_ARTICLE_DATE} AS published_at, a.language, a.feed_id,
                   f.name AS feed_name, f.url AS feed_url, a.fetched_at, a.updated_at,
                   a.site_name, a.description, a.image_url, a.tags, a.authors,
                   a.modified_at, a.published_at_source, a.section, a.keywords,
                   a.publisher, a.is_paywalled,
                   CASE WHEN %(text)s THEN a.text END AS text,
                   coalesce((SELECT t.entities FROM article_top_entities t
                             WHERE t.article_id = a.id), '[]') AS entities
            FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id
            WHERE (%(q)s::text IS NULL OR a.search @@ {_SEARCH_QUERY})
              AND (%(window)s::timestamptz IS NULL OR {_ARTICLE_DATE} >= %(window)s)
              AND (%(fid)s::bigint IS NULL OR a.feed_id = %(fid)s)
              AND (%(fname)s::text IS NULL OR a.feed_id IN (
                       SELECT id FROM feeds WHERE name = %(fname)s OR url = %(fname)s))
              AND (%(lang)s::text IS NULL OR a.language = %(lang)s)
              AND (%(eid)s::bigint IS NULL OR a.id IN (
                       SELECT article_id FROM article_entities WHERE entity_id = %(eid)s))
              AND (%(ename)s::text IS NULL OR a.id IN (
                       SELECT ae.article_id FROM article_entities ae
                       JOIN entities e ON e.id = ae.entity_id WHERE e.name = %(ename)s))
              AND (%(since)s::timestamptz IS NULL OR {_ARTICLE_DATE} >= %(since)s)
              AND (%(until)s::timestamptz IS NULL OR {_ARTICLE_DATE} < %(until)s)
              AND (%(bat)s::timestamptz IS NULL
                   OR ({_ARTICLE_DATE}, a.id) < (%(bat)s::timestamptz, %(bid)s::bigint))
            ORDER BY {_ARTICLE_DATE} DESC, a.id DESC
            LIMIT %(limit)s"""


def get_article(conn: Connection, article_id: int) -> dict | None:
    """One article with its text, its entities (most mentioned first) and every URL it was
    seen at (first seen first)."""
    article = conn.execute(
        f"""SELECT a.id, a.title, a.url, a.canonical_url, a.author,
                   {_ARTICLE_DATE} AS published_at, a.published_at_source, a.authors,
                   a.modified_at, a.section, a.keywords, a.publisher, a.is_paywalled,
                   a.language, a.feed_id, f.name AS feed_name, f.url AS feed_url, a.fetched_at,
                   a.updated_at, a.site_name, a.description, a.image_url, a.tags, a.text
            FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id WHERE a.id = %s""",
        (article_id,),
    ).fetchone()
    if article is None:
        return None
    article["entities"] = conn.execute(
        """SELECT e.id, e.name, e.label, ae.mentions FROM article_entities ae
           JOIN entities e ON e.id = ae.entity_id WHERE ae.article_id = %s
           ORDER BY ae.mentions DESC, e.name""",
        (article_id,),
    ).fetchall()
    article["urls"] = conn.execute(
        """SELECT u.url, u.feed_id, f.name AS feed_name, u.first_seen_at FROM article_urls u
           LEFT JOIN feeds f ON f.id = u.feed_id WHERE u.article_id = %s
           ORDER BY u.first_seen_at, u.id""",
        (article_id,),
    ).fetchall()
    return article


def top_entities(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    name: str | None = None,
    label: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """Entities by mentions in the articles dated in [since, until); `name` is a
    case-insensitive substring of the entity's name. The whole UTC days of the period are
    read from their counters (entity_daily_counts), the parts of a day at either end from
    the articles."""
    pattern = None if name is None else "%" + _like_escape(name) + "%"
    first_midnight = datetime.combine(since.astimezone(UTC).date(), time(), UTC)
    if first_midnight < since:
        first_midnight += timedelta(days=1)
    last_midnight = datetime.combine(until.astimezone(UTC).date(), time(), UTC)
    return conn.execute(
        f"""WITH counted AS (
                SELECT entity_id, articles, mentions FROM entity_daily_counts
                WHERE day >= %(first_day)s AND day < %(last_day)s
                UNION ALL
                SELECT ae.entity_id, 1, ae.mentions
                FROM articles a JOIN article_entities ae ON ae.article_id = a.id
                WHERE ({_ARTICLE_DATE} >= %(since)s AND {_ARTICLE_DATE} < %(head_end)s)
                   OR ({_ARTICLE_DATE} >= %(tail_start)s AND {_ARTICLE_DATE} < %(until)s))
            SELECT e.id, e.name, e.label, sum(c.mentions)::bigint AS mentions,
                   sum(c.articles)::bigint AS articles
            FROM counted c JOIN entities e ON e.id = c.entity_id
            WHERE (%(name)s::text IS NULL OR e.name ILIKE %(name)s)
              AND (%(label)s::text IS NULL OR e.label = %(label)s)
            GROUP BY e.id ORDER BY mentions DESC, e.name LIMIT %(limit)s""",
        {
            "first_day": first_midnight.date(),
            "last_day": last_midnight.date(),
            "since": since,
            "head_end": min(first_midnight, until),
            "tail_start": max(last_midnight, first_midnight),
            "until": until,
            "name": pattern,
            "label": label,
            "limit": limit,
        },
    ).fetchall()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def get_entity(conn: Connection, entity_id: int) -> dict | None:
    return conn.execute(
        "SELECT id, name, label FROM entities WHERE id = %s", (entity_id,)
    ).fetchone()


def entity_timeline(
    conn: Connection, entity_id: int, *, since: datetime, until: datetime
) -> list[dict]:
    """An entity's mentions and articles per UTC day in [since, until), days without any
    included; `since` and `until` are midnights UTC. From its counters (entity_daily_counts)."""
    return conn.execute(
        """WITH daily AS (
                SELECT day, mentions, articles FROM entity_daily_counts
                WHERE entity_id = %(id)s AND day >= %(first_day)s AND day < %(end_day)s)
            SELECT d::date AS day, coalesce(daily.mentions, 0) AS mentions,
                   coalesce(daily.articles, 0) AS articles
            FROM generate_series(%(first_day)s::date, %(end_day)s::date - 1,
                                 interval '1 day') AS d
            LEFT JOIN daily ON daily.day = d::date ORDER BY d""",
        {
            "id": entity_id,
            "first_day": since.astimezone(UTC).date(),
            "end_day": until.astimezone(UTC).date(),
        },
    ).fetchall()


def articles_per_hour(conn: Connection, hours: int) -> list[dict]:
    """Articles fetched in each of the last `hours` hours (the current one last)."""
    return conn.execute(
        """SELECT h AS hour, count(a.id) AS articles
           FROM generate_series(date_trunc('hour', now()) - make_interval(hours => %(n)s - 1),
                                date_trunc('hour', now()), interval '1 hour') AS h
           LEFT JOIN articles a ON a.fetched_at >= h AND a.fetched_at < h + interval '1 hour'
           GROUP BY h ORDER BY h""",
        {"n": hours},
    ).fetchall()


def list_events(conn: Connection, after: int, limit: int) -> list[dict]:
    """Events with an id above `after`, oldest first."""
    return conn.execute(
        """SELECT ev.id, ev.kind, ev.article_id, ev.created_at, a.title, a.url
           FROM events ev LEFT JOIN articles a ON a.id = ev.article_id
           WHERE ev.id > %s ORDER BY ev.id LIMIT %s""",
        (after, limit),
    ).fetchall()


# --- data out: events, webhooks, exports ---------------------------------------------------

EVENTS_CHANNEL = "newsloom_events"
EVENT_KINDS = ("stored", "updated", "duplicate")


# Held from an event's insert to its transaction's commit, so event ids are given in commit
# order: a reader that sees event N has seen every event before it, and a cursor that moves
# past N skips nothing that commits later.
_EVENTS_LOCK = 0x6E65_7774


def add_event(conn: Connection, kind: str, article_id: int) -> int:
    """Write an event in the caller's transaction (the change's) and notify listeners;
    Postgres delivers the notification at commit, and never for a rolled-back change.
    Call it last in the transaction: it takes the events lock until commit."""
    assert kind in EVENT_KINDS, kind
    row = _one(
        conn.execute(
            """WITH event AS (
               INSERT INTO events (kind, article_id)
               SELECT %s, %s FROM (SELECT pg_advisory_xact_lock(%s)) AS locked RETURNING id)
           SELECT id, pg_notify(%s, id::text) FROM event""",
            (kind, article_id, _EVENTS_LOCK, EVENTS_CHANNEL),
        )
    )
    return int(row["id"])


@dataclass(frozen=True)
class ArticleFilter:
    """Which articles an export (or a webhook) takes: newer than an id, published (or
    fetched) in [since, until), from a feed (URL, name or id), in a language, naming an
    entity. None lets everything through."""

    since_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    feed: str | None = None
    language: str | None = None
    entity: str | None = None

    def where(self) -> tuple[sql.Composable, dict]:
        condition = sql.SQL(
            """(%(since_id)s::bigint IS NULL OR a.id > %(since_id)s)
               AND (%(since)s::timestamptz IS NULL
                    OR coalesce(a.published_at, a.fetched_at) >= %(since)s)
               AND (%(until)s::timestamptz IS NULL
                    OR coalesce(a.published_at, a.fetched_at) < %(until)s)
               AND (%(feed)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM feeds f WHERE f.id = a.feed_id
                    AND (f.url = %(feed)s OR f.name = %(feed)s OR f.id::text = %(feed)s)))
               AND (%(language)s::text IS NULL OR a.language = %(language)s)
               AND (%(entity)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM article_entities ae JOIN entities e ON e.id = ae.entity_id
                    WHERE ae.article_id = a.id AND lower(e.name) = lower(%(entity)s)))"""
        )
        return condition, {
            "since_id": self.since_id,
            "since": self.since,
            "until": self.until,
            "feed": self.feed,
            "language": self.language,
            "entity": self.entity,
        }


# An article as consumers see it (newsloom.export.article_document shapes it): its
# fields, its feed, every URL it was seen at and its entities, most mentioned first.
_ARTICLE_DOCUMENT = sql.SQL(
    """SELECT a.id, a.url, a.canonical_url, a.title, a.author, a.published_at, a.updated_at,
              a.fetched_at, a.created_at, a.language, a.site_name, a.description, a.image_url,
              a.tags, a.text, a.content_hash, f.url AS feed_url, f.name AS feed_name,
              ARRAY(SELECT u.url FROM article_urls u WHERE u.article_id = a.id
                    ORDER BY u.id) AS urls,
              coalesce((SELECT jsonb_agg(jsonb_build_object('name', e.name, 'label', e.label,
                                                            'mentions', ae.mentions)
                                         ORDER BY ae.mentions DESC, e.name, e.label)
                        FROM article_entities ae JOIN entities e ON e.id = ae.entity_id
                        WHERE ae.article_id = a.id), '[]'::jsonb) AS entities
       FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id"""
)


def count_articles(conn: Connection, selection: ArticleFilter) -> int:
    condition, params = selection.where()
    query = sql.SQL("SELECT count(*) AS n FROM articles a WHERE {}").format(condition)
    return int(_one(conn.execute(query, params))["n"])


def stream_article_documents(
    conn: Connection, selection: ArticleFilter, batch: int = 2000
) -> Iterator[dict]:
    """The selected articles in id order through a server-side cursor: `batch` rows in
    memory at a time, however many there are. Holds a transaction open while iterated."""
    condition, params = selection.where()
    query = sql.SQL("{} WHERE {} ORDER BY a.id").format(_ARTICLE_DOCUMENT, condition)
    with conn.transaction(), conn.cursor(name="newsloom_export") as cursor:
        cursor.itersize = batch
        cursor.execute(query, params)
        yield from cursor


def get_article_document(conn: Connection, article_id: int) -> dict | None:
    return conn.execute(
        sql.SQL("{} WHERE a.id = %s").format(_ARTICLE_DOCUMENT), (article_id,)
    ).fetchone()


def export_cursor(conn: Connection, name: str) -> int | None:
    """The last article id the export named `name` wrote, None before its first run."""
    row = conn.execute(
        "SELECT last_article_id FROM export_cursors WHERE name = %s", (name,)
    ).fetchone()
    return row["last_article_id"] if row else None


def save_export_cursor(conn: Connection, name: str, last_article_id: int) -> None:
    conn.execute(
        """INSERT INTO export_cursors (name, last_article_id) VALUES (%s, %s)
           ON CONFLICT (name) DO UPDATE SET last_article_id = EXCLUDED.last_article_id,
               updated_at = now()""",
        (name, last_article_id),
    )


def sync_webhooks(
    conn: Connection,
    webhooks: Sequence[tuple[str, str, Sequence[str], Sequence[str], Sequence[str], Sequence[str]]],
) -> None:
    """Make `webhooks` match the feeds file: (url, secret, event kinds, feed URLs,
    languages, entity names) each. A new endpoint starts at the newest event (it is sent
    what happens from now on); one no longer in the file stops; one listed again resumes
    where it stopped, and is enabled again if it had answered 410."""
    with conn.transaction():
        conn.cursor().executemany(
            """INSERT INTO webhooks (url, secret, event_kinds, feed_urls, languages,
                                     entity_names, delivered_through)
               VALUES (%s, %s, %s, %s, %s, %s, (SELECT coalesce(max(id), 0) FROM events))
               ON CONFLICT (url) DO UPDATE SET secret = EXCLUDED.secret,
                   event_kinds = EXCLUDED.event_kinds, feed_urls = EXCLUDED.feed_urls,
                   languages = EXCLUDED.languages, entity_names = EXCLUDED.entity_names,
                   active = true,
                   disabled_at = CASE WHEN webhooks.active THEN webhooks.disabled_at END,
                   disabled_reason = CASE WHEN webhooks.active THEN webhooks.disabled_reason END
               WHERE (webhooks.secret, webhooks.event_kinds, webhooks.feed_urls,
                      webhooks.languages, webhooks.entity_names, webhooks.active)
                     IS DISTINCT FROM (EXCLUDED.secret, EXCLUDED.event_kinds,
                      EXCLUDED.feed_urls, EXCLUDED.languages, EXCLUDED.entity_names, true)""",
            [
                (url, secret, list(kinds), list(feeds), list(languages), list(entities))
                for url, secret, kinds, feeds, languages, entities in webhooks
            ],
        )
        conn.execute(
            "UPDATE webhooks SET active = false WHERE active AND NOT (url = ANY(%s))",
            ([w[0] for w in webhooks],),
        )


def claim_due_webhooks(conn: Connection, lease_seconds: float, limit: int = 100) -> list[dict]:
    """Endpoints with something to deliver and no delivery in flight, each leased to one
    delivery (id, lease_token) for `lease_seconds`; SKIP LOCKED, so several dispatchers
    never send one endpoint twice."""
    return conn.execute(
        """UPDATE webhooks w SET lease_token = md5(random()::text || clock_timestamp()::text),
               lease_until = now() + make_interval(secs => %s)
           FROM (SELECT id FROM webhooks
                 WHERE active AND disabled_at IS NULL
                   AND (lease_until IS NULL OR lease_until < now())
                   AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                   AND (EXISTS (SELECT 1 FROM events e WHERE e.id > webhooks.delivered_through)
                        OR EXISTS (SELECT 1 FROM dead_letters d
                                   WHERE d.webhook_id = webhooks.id AND d.resolved_at IS NULL
                                     AND d.replay_requested_at IS NOT NULL))
                 ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) due
           WHERE w.id = due.id RETURNING w.id, w.lease_token""",
        (lease_seconds, limit),
    ).fetchall()


def renew_webhook_lease(
    conn: Connection, webhook_id: int, lease_token: str, lease_seconds: float
) -> dict | None:
    """The endpoint, its lease extended, while `lease_token` still holds it; else None."""
    return conn.execute(
        """UPDATE webhooks SET lease_until = now() + make_interval(secs => %s)
           WHERE id = %s AND lease_token = %s AND active AND disabled_at IS NULL
           RETURNING *""",
        (lease_seconds, webhook_id, lease_token),
    ).fetchone()


def release_webhook(conn: Connection, webhook_id: int, lease_token: str) -> None:
    conn.execute(
        """UPDATE webhooks SET lease_token = NULL, lease_until = NULL
                    WHERE id = %s AND lease_token = %s""",
        (webhook_id, lease_token),
    )


def next_delivery(conn: Connection, webhook: dict) -> dict | None:
    """What the endpoint is to be sent next: a dead letter marked for replay first, else
    the first event after its cursor that its filters let through (event_id, kind,
    event_created_at, replay_of and the article document's columns). With nothing to
    send, the cursor moves past every event seen: one statement, one snapshot, and event
    ids are in commit order (add_event), so nothing committed later is skipped."""
    replay = conn.execute(
        """SELECT d.id AS replay_of, e.id AS event_id FROM dead_letters d
           JOIN events e ON e.id = d.event_id
           WHERE d.webhook_id = %s AND d.resolved_at IS NULL AND d.replay_requested_at IS NOT NULL
           ORDER BY d.event_id LIMIT 1""",
        (webhook["id"],),
    ).fetchone()
    if replay is None:
        found = _one(
            conn.execute(
                """SELECT (SELECT e.id FROM events e JOIN articles a ON a.id = e.article_id
                       WHERE e.id > %(after)s
                         AND (cardinality(%(kinds)s::text[]) = 0 OR e.kind = ANY(%(kinds)s))
                         AND (cardinality(%(languages)s::text[]) = 0
                              OR a.language = ANY(%(languages)s))
                         AND (cardinality(%(feeds)s::text[]) = 0 OR EXISTS (
                              SELECT 1 FROM article_urls u JOIN feeds f ON f.id = u.feed_id
                              WHERE u.article_id = a.id AND f.url = ANY(%(feeds)s)))
                         AND (cardinality(%(entities)s::text[]) = 0 OR EXISTS (
                              SELECT 1 FROM article_entities ae
                              JOIN entities n ON n.id = ae.entity_id
                              WHERE ae.article_id = a.id
                                AND lower(n.name) = ANY(%(entities_lower)s)))
                       ORDER BY e.id LIMIT 1) AS event_id,
                      (SELECT coalesce(max(id), 0) FROM events) AS horizon""",
                {
                    "after": webhook["delivered_through"],
                    "kinds": webhook["event_kinds"],
                    "languages": webhook["languages"],
                    "feeds": webhook["feed_urls"],
                    "entities": webhook["entity_names"],
                    "entities_lower": [n.lower() for n in webhook["entity_names"]],
                },
            )
        )
        if found["event_id"] is None:
            conn.execute(
                """UPDATE webhooks SET delivered_through = greatest(delivered_through, %s)
                   WHERE id = %s AND lease_token = %s""",
                (found["horizon"], webhook["id"], webhook["lease_token"]),
            )
            return None
        replay = {"replay_of": None, "event_id": found["event_id"]}
    return conn.execute(
        sql.SQL("""SELECT e.id AS event_id, e.kind, e.created_at AS event_created_at,
                          %s::bigint AS replay_of, doc.*
                   FROM events e, LATERAL ({} WHERE a.id = e.article_id) doc
                   WHERE e.id = %s""").format(_ARTICLE_DOCUMENT),
        (replay["replay_of"], replay["event_id"]),
    ).fetchone()


def record_delivery(conn: Connection, webhook: dict, delivery: dict) -> None:
    """The endpoint received this event: move its cursor (or resolve the replayed dead
    letter) and reset its attempts."""
    with conn.transaction():
        conn.execute(
            """UPDATE webhooks SET attempts = 0, next_attempt_at = NULL, last_success_at = now(),
                   delivered = delivered + 1,
                   delivered_through = CASE WHEN %(replay)s::bigint IS NULL
                       THEN greatest(delivered_through, %(event)s) ELSE delivered_through END
               WHERE id = %(id)s AND lease_token = %(token)s""",
            {
                "replay": delivery["replay_of"],
                "event": delivery["event_id"],
                "id": webhook["id"],
                "token": webhook["lease_token"],
            },
        )
        conn.execute(
            """UPDATE dead_letters SET resolved_at = now(), resolution = 'replayed'
               WHERE id = %s AND resolved_at IS NULL""",
            (delivery["replay_of"],),
        )


def record_delivery_failure(conn: Connection, webhook: dict, error: str, retry_in: float) -> int:
    """A failed try of the endpoint's next delivery, tried again in `retry_in` seconds
    (the lease is released meanwhile); returns the attempts so far."""
    row = conn.execute(
        """UPDATE webhooks SET attempts = attempts + 1, last_error = %s, last_error_at = now(),
               next_attempt_at = now() + make_interval(secs => %s),
               lease_token = NULL, lease_until = NULL
           WHERE id = %s AND lease_token = %s RETURNING attempts""",
        (error, retry_in, webhook["id"], webhook["lease_token"]),
    ).fetchone()
    return row["attempts"] if row else 0


def dead_letter_delivery(
    conn: Connection,
    webhook: dict,
    delivery: dict,
    *,
    error_class: str,
    error: str,
    traceback: str,
    attempts: int,
) -> None:
    """Give up on this event for this endpoint: a dead letter (replayable), and the
    endpoint moves on to its next event."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO dead_letters (task, payload, webhook_id, event_id, error_class, error,
                   traceback, attempts)
               VALUES ('newsloom.deliver', %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (webhook_id, event_id) WHERE resolved_at IS NULL DO UPDATE
               SET error_class = EXCLUDED.error_class, error = EXCLUDED.error,
                   traceback = EXCLUDED.traceback, attempts = EXCLUDED.attempts,
                   last_failed_at = now(), replay_requested_at = NULL""",
            (
                json.dumps(
                    {
                        "webhook": webhook["url"],
                        "event_id": delivery["event_id"],
                        "article_id": delivery["id"],
                        "kind": delivery["kind"],
                    }
                ),
                webhook["id"],
                delivery["event_id"],
                error_class,
                error,
                traceback,
                attempts,
            ),
        )
        conn.execute(
            """UPDATE webhooks SET attempts = 0, next_attempt_at = NULL, last_error = %s,
                   last_error_at = now(),
                   delivered_through = CASE WHEN %s::bigint IS NULL
                       THEN greatest(delivered_through, %s) ELSE delivered_through END
               WHERE id = %s AND lease_token = %s""",
            (
                error,
                delivery["replay_of"],
                delivery["event_id"],
                webhook["id"],
                webhook["lease_token"],
            ),
        )


def disable_webhook(conn: Connection, webhook: dict, reason: str) -> None:
    """The consumer unsubscribed (410 Gone): no more deliveries until it is listed anew."""
    conn.execute(
        """UPDATE webhooks SET disabled_at = now(), disabled_reason = %s, last_error = %s,
               last_error_at = now(), lease_token = NULL, lease_until = NULL
           WHERE id = %s""",
        (reason, reason, webhook["id"]),
    )


def webhook_status(conn: Connection) -> list[dict]:
    """Each endpoint in the feeds file: delivered, waiting, failing or disabled."""
    return conn.execute(
        """SELECT w.url, w.delivered, w.delivered_through,
                  (SELECT count(*) FROM events e WHERE e.id > w.delivered_through) AS behind,
                  w.attempts, w.next_attempt_at, w.last_success_at, w.last_error,
                  w.disabled_at, w.disabled_reason,
                  (SELECT count(*) FROM dead_letters d
                   WHERE d.webhook_id = w.id AND d.resolved_at IS NULL) AS dead_letters
           FROM webhooks w WHERE w.active ORDER BY w.url"""
    ).fetchall()


# --- lost messages (issue 11) ------------------------------------------------------------


def in_flight_untouched(conn: Connection, older_than: float, limit: int) -> list[dict]:
    """In-flight URLs untouched for `older_than` seconds (not changed, not resent)."""
    return conn.execute(
        """SELECT id, state FROM urls WHERE state IN ('queued', 'fetched')
           AND updated_at < now() - make_interval(secs => %s) ORDER BY updated_at LIMIT %s""",
        (older_than, limit),
    ).fetchall()


def touch_in_flight(conn: Connection, url_ids: list[int]) -> list[dict]:
    """Mark in-flight URLs as resent now; returns those still in flight (id, state)."""
    return conn.execute(
        """UPDATE urls SET updated_at = now() WHERE id = ANY(%s)
           AND state IN ('queued', 'fetched') RETURNING id, state""",
        (url_ids,),
    ).fetchall()


# --- WARC import and export --------------------------------------------------------------


def start_import(conn: Connection, location: str, filters: dict, size_bytes: int | None) -> dict:
    """The progress row of an imported file, created on its first import; a later run
    brings its own filters (the process step checks them)."""
    return _one(
        conn.execute(
            """INSERT INTO imports (location, filters, size_bytes) VALUES (%s, %s, %s)
           ON CONFLICT (location) DO UPDATE SET filters = EXCLUDED.filters,
               size_bytes = coalesce(EXCLUDED.size_bytes, imports.size_bytes),
               updated_at = now()
           RETURNING *""",
            (location, Jsonb(filters), size_bytes),
        )
    )


def lock_import(conn: Connection, import_id: int) -> bool:
    """Take the import's lock for this session; False when another session reads the file."""
    return bool(
        _one(
            conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s) AS locked", (_IMPORT_LOCKS, import_id)
            )
        )["locked"]
    )


_IMPORT_LOCKS = 0x7761_7263  # advisory lock class of imports ("warc")


def imported_in_flight(conn: Connection, import_id: int) -> list[int]:
    """URLs of an import still waiting to be processed: their messages may have been lost
    (an import killed between its commit and sending them)."""
    rows = conn.execute(
        """SELECT id FROM urls WHERE state IN ('queued', 'fetched') AND import_id = %s
           ORDER BY id""",
        (import_id,),
    ).fetchall()
    return [r["id"] for r in rows]


def record_imported_pages(
    conn: Connection,
    import_id: int,
    source: str,
    pages: Sequence[tuple[str, datetime, int, str, str | None, bytes]],
) -> list[int]:
    """Record (url, fetched_at, status, headers_json, content_type, html_zlib) pages of an
    import as fetched URLs with their kept pages; returns the ids of those new to the
    ledger (to process). A URL seen before, from a feed or an import, is left as it is."""
    if not pages:
        return []
    columns = [list(column) for column in zip(*pages, strict=True)]
    rows = conn.execute(
        """WITH page AS (
               SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::int[], %s::text[],
                                    %s::text[], %s::bytea[])
                   AS p(url, fetched_at, status, headers, content_type, html_zlib)),
           new AS (
               INSERT INTO urls (url, state, source, import_id)
               SELECT url, 'fetched', %s, %s FROM page
               ON CONFLICT (url) DO NOTHING RETURNING id, url),
           kept AS (
               INSERT INTO raw_pages (url_id, final_url, content_type, html_zlib, fetched_at,
                                      status, headers)
               SELECT new.id, page.url, page.content_type, page.html_zlib, page.fetched_at,
                      page.status, page.headers::jsonb
               FROM new JOIN page USING (url)
               RETURNING url_id)
           SELECT url_id FROM kept ORDER BY url_id""",
        (*columns, source, import_id),
    ).fetchall()
    return [r["url_id"] for r in rows]


def save_import_progress(
    conn: Connection,
    import_id: int,
    *,
    records_read: int,
    byte_offset: int,
    counts: dict[str, int],
    done: bool,
) -> None:
    conn.execute(
        """UPDATE imports SET records_read = %s, byte_offset = %s, counts = %s, done = %s,
               updated_at = now(), finished_at = CASE WHEN %s THEN now() END
           WHERE id = %s""",
        (records_read, byte_offset, Jsonb(counts), done, done, import_id),
    )


def list_imports(conn: Connection) -> list[dict]:
    return conn.execute("SELECT * FROM imports ORDER BY id").fetchall()


def articles_with_pages(
    conn: Connection, selection: ArticleFilter, batch: int = 200
) -> Iterator[dict]:
    """The selected articles with their kept pages and entities, in id order, read in
    batches by a server-side cursor (the caller's connection is busy until it ends)."""
    condition, params = selection.where()
    query = sql.SQL(
        """SELECT a.*, r.final_url, r.html_zlib, r.fetched_at AS page_fetched_at,
                  r.status, r.headers, r.content_type,
                  (SELECT coalesce(json_agg(json_build_array(e.name, e.label, ae.mentions)
                                            ORDER BY ae.mentions DESC, e.name), '[]')
                   FROM article_entities ae JOIN entities e ON e.id = ae.entity_id
                   WHERE ae.article_id = a.id) AS entities
           FROM articles a
           LEFT JOIN urls u ON u.id = a.page_url_id
                            OR (a.page_url_id IS NULL AND u.url = a.url)
           LEFT JOIN raw_pages r ON r.url_id = u.id
           WHERE {} ORDER BY a.id"""
    ).format(condition)
    with conn.transaction(), conn.cursor(name="newsloom_export_pages") as cursor:
        cursor.itersize = batch
        cursor.execute(query, params)
        yield from cursor


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
    page_bytes: int  # compressed page bytes removed with them
    last: tuple[datetime | str, int]  # the cursor for the next batch


def prune_raw_pages(
    conn: Connection, keep_seconds: float, after: tuple[datetime | str, int], limit: int
) -> PruneBatch:
    """Delete up to `limit` kept pages fetched `keep_seconds` ago or earlier, after the
    cursor `after` (fetched_at, url_id); one transaction."""
    rows = conn.execute(
        f"""WITH doomed AS (
                SELECT r.url_id {_PRUNABLE_PAGES}
                ORDER BY r.fetched_at, r.url_id LIMIT %(n)s
                FOR UPDATE OF r SKIP LOCKED FOR NO KEY UPDATE OF u SKIP LOCKED)
            DELETE FROM raw_pages r USING doomed WHERE r.url_id = doomed.url_id
            RETURNING r.fetched_at AS at, r.url_id AS id, octet_length(r.html_zlib) AS bytes""",
        {"keep": keep_seconds, "after_at": after[0], "after_id": after[1], "n": limit},
    ).fetchall()
    return _batch(rows, after)


def prune_urls(
    conn: Connection, keep_seconds: float, after: tuple[datetime | str, int], limit: int
) -> PruneBatch:
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
        {"keep": keep_seconds, "after_at": after[0], "after_id": after[1], "n": limit},
    ).fetchall()
    return _batch(rows, after, pages_once=True)


def _batch(
    rows: list[dict], after: tuple[datetime | str, int], pages_once: bool = False
) -> PruneBatch:
    if not rows:
        return PruneBatch(0, 0, after)
    last = max((r["at"], r["id"]) for r in rows)
    page_bytes = rows[0]["bytes"] if pages_once else sum(r["bytes"] for r in rows)
    return PruneBatch(len(rows), int(page_bytes), last)


def count_prunable(
    conn: Connection, raw_pages_keep: float | None, urls_keep: float | None
) -> dict[str, int]:
    """What a prune would remove now (--dry-run): pages and their bytes, ledger rows.
    Ledger rows count as today: a page the same run removes first may free a few more."""
    start = {"after_at": PRUNE_START[0], "after_id": PRUNE_START[1]}
    counts = {"raw_pages": 0, "raw_page_bytes": 0, "urls": 0}
    if raw_pages_keep is not None:
        row = _one(
            conn.execute(
                f"""SELECT count(*) AS n, coalesce(sum(octet_length(r.html_zlib)), 0)::bigint AS b
                {_PRUNABLE_PAGES}""",
                {**start, "keep": raw_pages_keep},
            )
        )
        counts.update(raw_pages=row["n"], raw_page_bytes=row["b"])
    if urls_keep is not None:
        counts["urls"] = _one(
            conn.execute(f"SELECT count(*) AS n {_PRUNABLE_URLS}", {**start, "keep": urls_keep})
        )["n"]
    return counts


def articles_without_kept_page(conn: Connection, extractor: str | None) -> int:
    """How many articles reprocess cannot redo (extracted by another extractor than
    `extractor`, all if None): their kept page was pruned."""
    return int(
        _one(
            conn.execute(
                """SELECT count(*) AS n FROM articles a
           WHERE (%(x)s::text IS NULL OR a.extractor <> %(x)s)
             AND NOT EXISTS (SELECT 1 FROM raw_pages r WHERE r.url_id = a.page_url_id)""",
                {"x": extractor},
            )
        )["n"]
    )


def try_lock_prune(conn: Connection) -> bool:
    """Take this session's prune lock, False when another session holds it: prunes on
    several schedulers (and a manual one) never run at once."""
    return bool(_one(conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_PRUNE_LOCK,)))["ok"])


def unlock_prune(conn: Connection) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (_PRUNE_LOCK,))


_PRUNE_LOCK = 0x6E6C_7072  # advisory lock id of prune


def claim_maintenance(conn: Connection, task: str, every_seconds: float) -> bool:
    """True when `task` last ran `every_seconds` ago or never, and records that it runs now:
    of several schedulers, one runs it per period."""
    return (
        conn.execute(
            """INSERT INTO maintenance_runs AS m (task, last_run_at) VALUES (%s, now())
           ON CONFLICT (task) DO UPDATE SET last_run_at = now()
           WHERE m.last_run_at <= now() - make_interval(secs => %s)
           RETURNING task""",
            (task, every_seconds),
        ).fetchone()
        is not None
    )


def recount_urls(conn: Connection) -> dict[tuple[str, str | None], int]:
    """URLs by (state, reason), counted row by row: the check of the counters."""
    rows = conn.execute("SELECT state, reason, count(*) AS n FROM urls GROUP BY 1, 2").fetchall()
    return {(r["state"], r["reason"]): r["n"] for r in rows}


def counted_urls(conn: Connection) -> dict[tuple[str, str | None], int]:
    """URLs by (state, reason), from the counters."""
    rows = conn.execute(
        """SELECT state, nullif(reason, '') AS reason, sum(n)::bigint AS n FROM url_counts
           GROUP BY 1, 2 HAVING sum(n) <> 0"""
    ).fetchall()
    return {(r["state"], r["reason"]): r["n"] for r in rows}


def entity_tables_off(conn: Connection) -> int:
    """Rows of the tables triggers keep from article_entities (entity_daily_counts,
    entity_pair_counts, article_top_entities) missing, extra or wrong against a recount:
    the check of those tables."""
    query = """WITH days AS (
                SELECT ae.entity_id, article_day(a.published_at, a.fetched_at) AS day,
                       count(*) AS articles, sum(ae.mentions)::bigint AS mentions
                FROM article_entities ae JOIN articles a ON a.id = ae.article_id GROUP BY 1, 2),
            pairs AS (
                SELECT a1.entity_id, a2.entity_id AS other_id, count(*) AS articles
                FROM article_entities a1
                JOIN article_entities a2
                  ON a2.article_id = a1.article_id AND a2.entity_id > a1.entity_id
                GROUP BY 1, 2),
            tops AS (
                SELECT article_id, top_entities_of(article_id)::text AS entities
                FROM (SELECT DISTINCT article_id FROM article_entities) a),
            kept_tops AS (SELECT article_id, entities::text FROM article_top_entities)
           SELECT (SELECT count(*) FROM ((TABLE days EXCEPT TABLE entity_daily_counts)
                                         UNION ALL
                                         (TABLE entity_daily_counts EXCEPT TABLE days)) d)
                  + (SELECT count(*) FROM ((TABLE pairs EXCEPT TABLE entity_pair_counts)
                                           UNION ALL
                                           (TABLE entity_pair_counts EXCEPT TABLE pairs)) p)
                  + (SELECT count(*) FROM ((TABLE tops EXCEPT TABLE kept_tops)
                                           UNION ALL
                                           (TABLE kept_tops EXCEPT TABLE tops)) t)
                  AS n"""
    return int(_one(conn.execute(query))["n"])
