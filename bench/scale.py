"""Scale benchmark: is a year of collection as quick to use as an empty database?

Fills a scratch database with N articles and 5N ledger URLs (in SQL: generate_series, so a
million articles take minutes, not days) and F feeds, then measures what users and the
pipeline run against it:

- the store step (dedupe lookup and insert, one transaction) p50/p95, on the empty
  database first and again on the full one (goal: within 1.2x);
- `status --json`, `feeds list`, `search` and the README's views (goal: under 1 s each);
- the reconciler's scan for lost messages and the scheduler's claim of due feeds;
- storage per article: rows and bytes by table.

The fill: texts recombine sentences of the story corpus (tests/fixtures/stories, 25-40
sentences, about 4,500 characters, each article its own text); entities follow a skewed
(Zipf-like) popularity; every article has 30 LSH band keys of its own (64-bit, as
worker/dedupe.py makes them) and one in 20 shares a third of its bands with the article
before it, as near-duplicate candidates do. URLs: per article, its own URL (stored), a
syndicated copy (duplicate), 2.89 skipped (404, not HTML, no text, robots, too large),
0.1 dead (a fifth with an open dead letter) and 0.01 in flight. Kept pages are random
bytes of --page-bytes (real pages compress to about 50 KB; see the storage figures).

    .venv/bin/python bench/scale.py --articles 200000 --feeds 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.numeric import Int4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from site_fixture import _story_corpus, synthetic_article  # noqa: E402
from support import scratch_database  # noqa: E402

from newsloom import db  # noqa: E402
from newsloom.worker.dedupe import article_keys  # noqa: E402
from newsloom.worker.pipeline import store  # noqa: E402

# URLs per article besides its own and its copy: 3, of which per 300 289 skipped, 10 dead
# and 1 in flight; 5 in all.
OTHER_URLS, SKIPPED_PER_300, DEAD_PER_300 = 3, 289, 10
SKIP_REASONS = ("http_404", "not_html", "no_text", "robots", "too_large")
DEAD_ERRORS = ("ReadTimeout", "ConnectError", "Poisoned")
CHUNK = 10_000  # articles per fill statement
# Tables whose secondary indexes are dropped during the fill and built again after it.
FILLED = ("articles", "urls", "article_urls", "article_entities", "raw_pages", "dead_letters")


# --- the fill -----------------------------------------------------------------------------


def fill(url: str, articles: int, feeds: int, page_bytes: int) -> float:
    """Fill the database; returns the seconds it took."""
    start = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        conn.execute("CREATE TABLE bench_sentences (i int PRIMARY KEY, s text NOT NULL)")
        _, sentences = _story_corpus()
        with conn.cursor().copy("COPY bench_sentences (i, s) FROM STDIN") as copy:
            for i, sentence in enumerate(sentences):
                copy.write_row((i, sentence))
        indexes = conn.execute(
            """SELECT indexname, indexdef FROM pg_indexes
               WHERE schemaname = 'public' AND tablename = ANY(%s)
                 AND indexname NOT IN (SELECT conname FROM pg_constraint)""",
            (list(FILLED),),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            """INSERT INTO feeds (url, name, interval_seconds, next_check_at, consecutive_errors,
                                  last_error, last_success_at, items_seen)
               SELECT 'https://site' || f || '.example/feed.xml', 'Site ' || f, 900,
                      now() + make_interval(secs => f %% 900 - 60),
                      CASE WHEN f %% 50 = 0 THEN 3 ELSE 0 END,
                      CASE WHEN f %% 50 = 0 THEN 'ConnectError: refused' END, now(), 40
               FROM generate_series(1, %s) f""",
            (feeds,),
        )
        conn.execute(
            """INSERT INTO entities (id, name, label)
               SELECT e, 'Entity ' || e,
                      (ARRAY['PERSON','ORG','GPE','NORP','EVENT'])[1 + e %% 5]
               FROM generate_series(1, %s) e""",
            (max(1000, articles // 20),),
        )
    params = {
        "n": articles,
        "f": feeds,
        "e": max(1000, articles // 20),
        "s": len(sentences),
        "page": page_bytes,
        "sk": list(SKIP_REASONS),
        "de": list(DEAD_ERRORS),
    }
    chunks = [(lo, min(lo + CHUNK, articles + 1)) for lo in range(1, articles + 1, CHUNK)]
    done = 0

    def fill_chunk(bounds: tuple[int, int]) -> None:
        nonlocal done
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in FILL_CHUNK:
                # Numbers as integer: psycopg binds a small int as smallint, and sums
                # such as n + hi then overflow (e.g. at 20,000 articles).
                chunk = {**params, "lo": bounds[0], "hi": bounds[1]}
                conn.execute(
                    statement,
                    {k: Int4(v) if isinstance(v, int) else v for k, v in chunk.items()},
                )
        done += 1
        if done % max(1, len(chunks) // 10) == 0:
            print(
                f"  ... filled {done}/{len(chunks)} chunks, {time.monotonic() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(fill_chunk, chunks))
    with psycopg.connect(url, autocommit=True) as conn:
        for table, column in (
            ("urls", "id"),
            ("articles", "id"),
            ("entities", "id"),
            ("article_urls", "id"),
            ("dead_letters", "id"),
            ("feeds", "id"),
        ):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" (SELECT max({column}) FROM {table}))"
            )
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("DROP TABLE bench_sentences")
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - start


# Per chunk of article numbers g in [lo, hi). Ids are laid out by kind so that they need no
# lookups: the stored URL of article g is url g, its copy n + g, then the skipped, dead and
# in-flight URLs. Time runs over a year, article 1 oldest.
FILL_CHUNK = (
    """INSERT INTO urls (id, url, feed_id, state, reason, article_id, first_seen_at, updated_at)
       SELECT g, 'https://site' || (1 + g %% %(f)s) || '.example/news/' || g, 1 + g %% %(f)s,
              'stored', NULL, g, t, t
       FROM generate_series(%(lo)s, %(hi)s - 1) g,
            LATERAL (SELECT now() - make_interval(secs => (%(n)s - g) * 31536000.0 / %(n)s)
                     AS t) at""",
    """INSERT INTO urls (id, url, feed_id, state, reason, article_id, first_seen_at, updated_at)
       SELECT %(n)s + g, 'https://mirror' || g %% 997 || '.example/story/' || g,
              1 + (g * 7) %% %(f)s, 'duplicate', NULL, g, t, t
       FROM generate_series(%(lo)s, %(hi)s - 1) g,
            LATERAL (SELECT now() - make_interval(secs => (%(n)s - g) * 31536000.0 / %(n)s)
                     AS t) at""",
    # The others: skipped, dead, in flight, in proportion, over the same year.
    f"""INSERT INTO urls (id, url, feed_id, state, reason, first_seen_at, updated_at)
       SELECT 2 * %(n)s + x, 'https://site' || (1 + x %% %(f)s) || '.example/other/' || x,
              1 + x %% %(f)s, kind.state,
              CASE kind.state WHEN 'skipped' THEN (%(sk)s::text[])[1 + x %% 5]
                              WHEN 'dead' THEN (%(de)s::text[])[1 + x %% 3] END,
              t, t
       FROM generate_series((%(lo)s - 1) * {OTHER_URLS} + 1,
                            (%(hi)s - 1) * {OTHER_URLS}) x,
            LATERAL (SELECT CASE WHEN x %% 300 < {SKIPPED_PER_300} THEN 'skipped'
                                 WHEN x %% 300 < {SKIPPED_PER_300 + DEAD_PER_300} THEN 'dead'
                                 WHEN x %% 2 = 0 THEN 'queued' ELSE 'fetched' END AS state) kind,
            LATERAL (SELECT CASE WHEN kind.state IN ('queued', 'fetched') AND x %% 10 > 0
                                 THEN now() - make_interval(secs => x %% 3600)
                                 ELSE now() - make_interval(
                                     secs => (%(n)s - x / {OTHER_URLS})
                                             * 31536000.0 / %(n)s) END AS t) at""",
    """INSERT INTO articles (id, url, canonical_url, title, author, published_at, language, text,
                             site_name, description, feed_id, fetched_at, content_hash,
                             extractor, created_at, page_url_id, tags, minhash, lsh_bands)
       SELECT g, u, u, left(body.text, 90), 'Staff', t, 'en', body.text, 'Site',
              left(body.text, 160),
              1 + g %% %(f)s, t, encode(sha256(convert_to(body.text, 'UTF8')), 'hex'),
              'bench', t, g, ARRAY['News', 'Section ' || g %% 40],
              ARRAY(SELECT hashint8(g * 128 + k)::bigint FROM generate_series(1, 90) k),
              ARRAY(SELECT (hashint8(b * 64 + k)::bigint << 32)
                           | (hashint8(b * 64 + k + 31)::bigint & 4294967295)
                    FROM generate_series(1, 30) k,
                         LATERAL (SELECT CASE WHEN g %% 20 = 0 AND k <= 10 THEN g - 1
                                              ELSE g END AS b) band)
       FROM generate_series(%(lo)s, %(hi)s - 1) g,
            LATERAL (SELECT 'https://site' || (1 + g %% %(f)s) || '.example/news/' || g AS u,
                            now() - make_interval(secs => (%(n)s - g) * 31536000.0 / %(n)s)
                            AS t) at,
            LATERAL (SELECT 'Report ' || g || ': ' || string_agg(s.s, ' ' ORDER BY k) AS text
                     FROM generate_series(1, 25 + g %% 16) k
                     JOIN bench_sentences s ON s.i = abs(hashint8(g * 64 + k)) %% %(s)s) body""",
    """INSERT INTO article_urls (url, article_id, feed_id, first_seen_at)
       SELECT u.url, u.article_id, u.feed_id, u.first_seen_at FROM urls u
       WHERE u.id BETWEEN %(lo)s AND %(hi)s - 1
          OR u.id BETWEEN %(n)s + %(lo)s AND %(n)s + %(hi)s - 1""",
    """INSERT INTO raw_pages (url_id, final_url, content_type, html_zlib, fetched_at)
       SELECT u.id, u.url, 'text/html',
              (SELECT string_agg(gen_random_bytes(least(1024, %(page)s - (k - 1) * 1024)), ''
                                 ORDER BY k)
               FROM generate_series(1, ceil(%(page)s / 1024.0)::int) k WHERE u.id > 0),
              u.updated_at
       FROM urls u
       WHERE u.id BETWEEN %(lo)s AND %(hi)s - 1
          OR u.id BETWEEN %(n)s + %(lo)s AND %(n)s + %(hi)s - 1""",
    # Entities: 6 to 10 per article, the most popular ones far more often (u^3).
    """INSERT INTO article_entities (article_id, entity_id, mentions)
       SELECT DISTINCT ON (g, e) g, e, 1 + k %% 3
       FROM generate_series(%(lo)s, %(hi)s - 1) g, generate_series(1, 6 + g %% 5) k,
            LATERAL (SELECT 1 + floor(%(e)s * power(
                         (abs(hashint8(g * 32 + k)) %% 1000000) / 1000000.0, 3))::int AS e) pick
       ON CONFLICT DO NOTHING""",
    """INSERT INTO dead_letters (task, payload, url_id, error_class, error, traceback, attempts,
                                 resolved_at, resolution)
       SELECT 'newsloom.fetch', jsonb_build_object('url_id', u.id), u.id, u.reason,
              u.reason || ': bench', 'Traceback (most recent call last): ...', 5,
              CASE WHEN u.id %% 5 > 0 THEN u.updated_at END,
              CASE WHEN u.id %% 5 > 0 THEN 'discarded' END
       FROM urls u
       WHERE u.state = 'dead'
         AND u.id BETWEEN 2 * %(n)s + (%(lo)s - 1) * 3 + 1
                      AND 2 * %(n)s + (%(hi)s - 1) * 3""",
)


# --- measurements ---------------------------------------------------------------------------


def timed(run: Callable[[], object], repeat: int = 5) -> float:
    """Median seconds of `run`, after one warm-up run."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def store_latencies(url: str, first: int, count: int, warm_up: int = 20) -> list[float]:
    """Seconds of the store step (dedupe lookup + insert, one transaction) for `count` new
    articles, after `warm_up` untimed ones (connection, plans); extraction, keys and
    tagging are done beforehand and not timed."""
    when = datetime.now(UTC)
    prepared = []
    for n in range(first, first + warm_up + count):
        title, paragraphs = synthetic_article(n)
        text = "\n\n".join(paragraphs)
        page_url = f"https://store.example/{n}"
        keys = article_keys(page_url, None, text)
        content = {
            "title": title,
            "author": None,
            "authors": [],
            "published_at": when,
            "published_at_source": "json-ld",
            "modified_at": None,
            "section": None,
            "keywords": [],
            "publisher": None,
            "is_paywalled": False,
            "language": "en",
            "text": text,
            "site_name": None,
            "description": None,
            "image_url": None,
            "tags": [],
            "fetched_at": when,
            "extractor": "bench",
            "content_hash": keys.content_hash,
            "minhash": keys.minhash,
            "lsh_bands": keys.lsh_bands,
            "entities_skipped": None,
        }
        entities = [(f"Agency {1 + (n * 7 + k) % 500}", "ORG", 1 + k % 2) for k in range(8)]
        prepared.append((page_url, keys, content, entities))
    latencies = []
    with db.connect(url) as conn:
        for page_url, keys, content, entities in prepared:
            [url_id] = db.record_new_urls(conn, None, [(page_url, None, None)])
            conn.execute("UPDATE urls SET state = 'fetched' WHERE id = %s", (url_id,))
            start = time.perf_counter()
            store(
                conn,
                url_id=url_id,
                url=page_url,
                feed_id=None,
                keys=keys,
                content={**content, "page_url_id": url_id},
                entities=entities,
            )
            latencies.append(time.perf_counter() - start)
    return latencies[warm_up:]


def quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=20)
    return statistics.median(values), cuts[18]


def cli_seconds(url: str, *args: str) -> float:
    """Wall time of a newsloom command, start-up included; its output is discarded."""
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        **os.environ,
        "DATABASE_URL": url,
        "NEWSLOOM_METRICS_PORT": "0",
    }
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"newsloom {' '.join(args)} failed: {result.stderr[-500:]}")
    return time.perf_counter() - start


def in_rollback(url: str, run: Callable[[psycopg.Connection], object]) -> Callable[[], object]:
    """`run` in a transaction that is rolled back: writing queries leave nothing behind."""
    conn = db.connect(url)

    def once() -> object:
        with conn.transaction(force_rollback=True):
            return run(conn)

    return once


def queries(url: str, feeds: int) -> dict[str, Callable[[], object]]:
    """What is timed: newsloom's own queries as it runs them, and the README's views as a
    client such as psql reads them (plain tuples)."""
    conn = db.connect(url)
    plain = conn.cursor(row_factory=tuple_row)
    popular = "Entity 1"  # the most mentioned entity
    return {
        "status (db.status_report)": lambda: db.status_report(conn),
        "feeds list (db.list_feeds, first 101)": lambda: db.list_feeds(conn, 101),
        "search 'harbour'": lambda: db.search_articles(conn, "harbour"),
        "search 'council \"said on\" -fire'": lambda: db.search_articles(
            conn, 'council "said on" -fire'
        ),
        "search rare word 'Report 12345'": lambda: db.search_articles(conn, '"Report 12345"'),
        "latest_articles LIMIT 20": lambda: plain.execute(
            "SELECT published_at, feed, title, entities[1:5] FROM latest_articles LIMIT 20"
        ).fetchall(),
        f"entity_pairs WHERE entity = '{popular}' (top entity)": lambda: plain.execute(
            """SELECT other, other_label, articles FROM entity_pairs WHERE entity = %s
               ORDER BY articles DESC LIMIT 10""",
            (popular,),
        ).fetchall(),
        "entity_pairs WHERE entity = 'Entity 5000'": lambda: plain.execute(
            """SELECT other, other_label, articles FROM entity_pairs WHERE entity = %s
               ORDER BY articles DESC LIMIT 10""",
            ("Entity 5000",),
        ).fetchall(),
        f"entity_mentions_daily WHERE entity = '{popular}'": lambda: plain.execute(
            """SELECT day, articles, mentions FROM entity_mentions_daily WHERE entity = %s
               ORDER BY day""",
            (popular,),
        ).fetchall(),
        f"feed_stats (all {feeds} feeds)": lambda: plain.execute(
            """SELECT name, urls, stored, duplicates, skipped, dead, in_flight,
                      consecutive_errors FROM feed_stats"""
        ).fetchall(),
        "feed_stats WHERE id = 42": lambda: plain.execute(
            "SELECT * FROM feed_stats WHERE id = 42"
        ).fetchall(),
        "reconciler scan (db.stale_in_flight, 1000)": in_rollback(
            url, lambda c: db.stale_in_flight(c, 7200, 1000)
        ),
        "scheduler claim (db.claim_due_feeds, 16)": in_rollback(
            url, lambda c: db.claim_due_feeds(c, 16, 600)
        ),
    }


def storage(url: str) -> list[tuple[str, int, int]]:
    """(table, rows, bytes with indexes and TOAST) of every table, largest first."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid)
               FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                 AND c.relkind = 'r' ORDER BY 3 DESC"""
        ).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument(
        "--feeds", type=int, default=None, help="feeds (default: articles / 10, at most 100,000)"
    )
    parser.add_argument(
        "--page-bytes",
        type=int,
        default=4096,
        help="size of each kept page (random bytes; real ones ~50 KB)",
    )
    parser.add_argument(
        "--stores", type=int, default=200, help="store steps timed on each database (at most 4,000)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the filled database (its URL is printed) for --reuse",
    )
    parser.add_argument(
        "--reuse",
        metavar="URL",
        help="measure a database filled before (--keep) instead of filling one",
    )
    args = parser.parse_args()
    feeds = args.feeds or min(100_000, max(100, args.articles // 10))
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if args.reuse:
        measure(admin_url, args.reuse, args.articles, feeds, args.stores)
        return
    print(f"scale bench: {args.articles} articles, {feeds} feeds, pages of {args.page_bytes} bytes")
    with ExitStack() as stack:
        url = (
            stack.enter_context(scratch_database(admin_url, "scale"))
            if not args.keep
            else kept_database(admin_url)
        )
        seconds = fill(url, args.articles, feeds, args.page_bytes)
        with db.connect(url) as conn:
            urls = db.recount_urls(conn)
        print(f"  filled in {seconds:.0f} s: {args.articles} articles, {sum(urls.values())} URLs")
        measure(admin_url, url, args.articles, feeds, args.stores)


def kept_database(admin_url: str) -> str:
    """A new database with the schema, left in place afterwards."""
    from psycopg.conninfo import make_conninfo

    from newsloom import migrate

    name = f"newsloom_scale_kept_{int(time.time())}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    with db.connect(url) as conn:
        migrate.apply(conn)
    print(f"  database kept: {url}")
    return url


def compare_store(
    admin_url: str, full_url: str, stores: int, rounds: int = 4
) -> tuple[list[float], list[float]]:
    """The store step on an empty database and on the full one, in alternating rounds (on
    a shared machine the load drifts); returns both sets of latencies."""
    empty: list[float] = []
    full: list[float] = []
    first = int(time.time()) % 1_000_000 * 10_000  # new URLs on every run of --reuse
    with scratch_database(admin_url, "scale_empty") as empty_url:
        for n in range(rounds):
            empty += store_latencies(empty_url, first + n * 1000, stores // rounds)
            full += store_latencies(full_url, first + n * 1000, stores // rounds)
    return empty, full


def measure(admin_url: str, url: str, articles: int, feeds: int, stores: int) -> None:
    empty, full = (quantiles(latencies) for latencies in compare_store(admin_url, url, stores))
    print(
        f"  store step p50 / p95: empty {empty[0] * 1000:.1f} / {empty[1] * 1000:.1f} ms,"
        f" full {full[0] * 1000:.1f} / {full[1] * 1000:.1f} ms"
        f" ({full[0] / empty[0]:.2f}x / {full[1] / empty[1]:.2f}x)"
    )
    with db.connect(url) as conn:
        assert db.counted_urls(conn) == db.recount_urls(conn), "counters disagree"
        assert db.entity_tables_off(conn) == 0, "entity counters disagree"
    print("  counters equal a recount")
    for name, run in queries(url, feeds).items():
        print(f"  {name}: {timed(run) * 1000:.1f} ms")
    for command in (("status", "--json"), ("feeds", "list"), ("search", "harbour")):
        print(
            f"  newsloom {' '.join(command)} (wall, start-up included): "
            f"{cli_seconds(url, *command):.2f} s"
        )
    print("  storage (table: rows, bytes with indexes and TOAST; per article)")
    total = 0
    for table, rows, size in storage(url):
        total += size
        print(
            f"    {table}: {rows} rows, {size / 2**20:.1f} MB; "
            f"{rows / articles:.2f} rows, {size / articles / 1024:.2f} KB per article"
        )
    print(f"    all: {total / 2**20:.1f} MB, {total / articles / 1024:.2f} KB per article")


if __name__ == "__main__":
    main()
