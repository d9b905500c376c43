"""Scheduler benchmark: how many feed polls per second one `newsloom scheduler` process
makes, and the CPU each costs, over N feeds on a loopback server.

Two cycles: the first finds every entry new (records and enqueues them), the second is
all 304 Not Modified (the steady state of conditional GET). The loopback server shares
the machine's cores with the scheduler, Postgres and Redis, so figures are a floor.

    .venv/bin/python bench/scheduler.py --feeds 10000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback site of the test suite

from site_fixture import FeedItem, FixtureSite, rss2  # noqa: E402
from support import newsloom_env, scratch_database, scratch_redis_prefix  # noqa: E402

NEEDED = 10_000 / (15 * 60)  # polls per second to keep 10,000 feeds at 15-minute intervals


def serve_feeds(site: FixtureSite, count: int, items: int) -> None:
    def feed(request):
        number = request.path.rsplit("/", 1)[-1].removesuffix(".xml")
        etag = f'"{number}"'
        if request.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        body = rss2(
            [FeedItem(site.url(f"/story/{number}/{i}"), f"Story {i}") for i in range(items)],
            title=f"Feed {number}",
            link=site.url("/"),
        ).encode()
        return 200, {"Content-Type": "application/rss+xml", "ETag": etag}, body

    for n in range(count):
        site.add_handler(f"/feed/{n}.xml", feed)


def polled(database_url: str, since: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM feeds WHERE last_checked_at > %s", (since,)
        ).fetchone()[0]


def measure_cycle(database_url: str, scheduler: psutil.Process, count: int) -> dict:
    with psycopg.connect(database_url) as conn:
        start_at = conn.execute("SELECT now()::text").fetchone()[0]
        conn.execute("UPDATE feeds SET next_check_at = now()")
        conn.commit()
    cpu0, t0 = sum(scheduler.cpu_times()[:2]), time.monotonic()
    last_report = t0
    while (done := polled(database_url, start_at)) < count:
        if time.monotonic() - t0 > 3600:
            raise SystemExit("a cycle took more than an hour")
        if time.monotonic() - last_report >= 5:
            print(f"  ... {done}/{count} feeds polled", file=sys.stderr, flush=True)
            last_report = time.monotonic()
        time.sleep(0.5)
    seconds, cpu = time.monotonic() - t0, sum(scheduler.cpu_times()[:2]) - cpu0
    return {
        "seconds": seconds,
        "polls_per_s": count / seconds,
        "cpu_ms_per_poll": cpu / count * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5, help="entries per feed")
    parser.add_argument("--concurrency", type=int, default=16, help="NEWSLOOM_POLL_CONCURRENCY")
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    with (
        scratch_database(admin_url, "bench") as database_url,
        scratch_redis_prefix(redis_url, "bench") as prefix,
        FixtureSite() as site,
        tempfile.TemporaryDirectory() as tmp,
    ):
        serve_feeds(site, args.feeds, args.items)
        feeds_file = Path(tmp) / "feeds.toml"
        feeds_file.write_text(
            "".join(
                f'[[feed]]\nurl = "{site.url(f"/feed/{n}.xml")}"\ninterval = "15m"\n'
                for n in range(args.feeds)
            )
        )
        env = newsloom_env(
            database_url,
            redis_url,
            prefix,
            feeds_file,
            log_level="warning",
            poll_concurrency=args.concurrency,
            scheduler_tick="0.2s",
        )
        process = subprocess.Popen([sys.executable, "-m", "newsloom", "scheduler"], env=env)
        try:
            scheduler = psutil.Process(process.pid)
            first = measure_cycle(database_url, scheduler, args.feeds)
            steady = measure_cycle(database_url, scheduler, args.feeds)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)

    print(
        f"scheduler bench: {args.feeds} feeds x {args.items} entries, poll concurrency "
        f"{args.concurrency}, {os.cpu_count()} cores"
    )
    for label, cycle in (("first poll (all new)", first), ("steady state (304)", steady)):
        print(
            f"  {label:22} {cycle['polls_per_s']:8.1f} polls/s  {cycle['cpu_ms_per_poll']:6.2f} ms "
            f"CPU/poll  {cycle['seconds']:7.1f} s  = {cycle['polls_per_s'] / NEEDED:5.1f}x the "
            f"{NEEDED:.1f} polls/s that 10,000 feeds every 15 min need"
        )


if __name__ == "__main__":
    main()
