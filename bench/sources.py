"""Sources benchmark: one `newsloom scheduler` over N loopback sitemaps of U URLs each
(polls per second, CPU per poll), and the memory of parsing one large sitemap.

Three cycles over the sitemaps: the first finds every URL new (records and enqueues
them); the second gets every sitemap again unchanged with no validators (parse, then
the ledger finds nothing new: what a site without ETag costs); the third is all 304.
The issue's full size is `--sitemaps 10000 --urls 1000` (10 million URLs); the loopback
server shares the cores with the scheduler, Postgres and Redis, so figures are a floor.

    .venv/bin/python bench/sources.py --sitemaps 200 --urls 1000
    .venv/bin/python bench/sources.py --memory-only --memory-urls 50000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback site of the test suite
sys.path.insert(0, str(ROOT / "bench"))

from site_fixture import FixtureSite, Request  # noqa: E402
from support import newsloom_env, scratch_database, scratch_redis_prefix  # noqa: E402

from scheduler import measure_cycle  # noqa: E402


def sitemap_template(site: FixtureSite, urls: int) -> bytes:
    """One sitemap's body with @N@ where the sitemap's number goes: cheap to serve."""
    rows = "".join(
        f"<url><loc>{site.url('/story/@N@/')}{i}</loc>"
        "<lastmod>2026-11-29T10:00:00+00:00</lastmod></url>\n"
        for i in range(urls)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns='
        f'"http://www.sitemaps.org/schemas/sitemap/0.9">\n{rows}</urlset>\n'
    ).encode()


def serve_sitemaps(site: FixtureSite, count: int, urls: int, mode: dict[str, bool]) -> None:
    template = sitemap_template(site, urls)

    def sitemap(request: Request) -> tuple[int, dict[str, str], bytes]:
        number = request.path.rsplit("/", 1)[-1].removesuffix(".xml")
        if mode["validators"]:
            etag = f'"{number}"'
            if request.headers.get("If-None-Match") == etag:
                return 304, {"ETag": etag}, b""
            headers = {"ETag": etag}
        else:
            headers = {}
        body = template.replace(b"@N@", number.encode())
        return 200, {"Content-Type": "application/xml", **headers}, body

    for n in range(count):
        site.add_handler(f"/sitemap/{n}.xml", sitemap)


def scheduler_bench(args: argparse.Namespace) -> list[tuple[str, dict]]:
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    mode = {"validators": True}
    with (
        scratch_database(admin_url, "bench") as database_url,
        scratch_redis_prefix(redis_url, "bench") as prefix,
        FixtureSite() as site,
        tempfile.TemporaryDirectory() as tmp,
    ):
        serve_sitemaps(site, args.sitemaps, args.urls, mode)
        feeds_file = Path(tmp) / "feeds.toml"
        feeds_file.write_text(
            "".join(
                f'[[feed]]\nurl = "{site.url(f"/sitemap/{n}.xml")}"\ninterval = "1h"\n'
                'since = "all"\n'
                for n in range(args.sitemaps)
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
            first = measure_cycle(database_url, scheduler, args.sitemaps)
            mode["validators"] = False
            unchanged = measure_cycle(database_url, scheduler, args.sitemaps)
            mode["validators"] = True
            measure_cycle(database_url, scheduler, args.sitemaps)  # takes the ETags again
            steady = measure_cycle(database_url, scheduler, args.sitemaps)
            peak_rss = scheduler.memory_info().rss
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    print(f"scheduler RSS at the end: {peak_rss / 1e6:.0f} MB")
    return [
        ("first poll (all new)", first),
        ("unchanged, no ETag", unchanged),
        ("steady state (304)", steady),
    ]


# Runs in a fresh interpreter, the body read from a file: the growth is the parse's alone.
_MEMORY_PROBE = """
import json, sys, threading, time
from pathlib import Path
import psutil
from lxml import etree
from newsloom.scheduler.sources import parse_sitemap
body, how = Path(sys.argv[1]).read_bytes(), sys.argv[2]
me, peak, done = psutil.Process(), [0], threading.Event()
def sample():  # the peak of the resident set while parsing, every millisecond
    while not done.is_set():
        peak[0] = max(peak[0], me.memory_info().rss)
        time.sleep(0.001)
before = me.memory_info().rss
sampler = threading.Thread(target=sample)
sampler.start()
started = time.process_time()
if how == "iterparse":
    found = len(parse_sitemap(body, "https://news.example/sitemap.xml", 10**9).entries)
elif how == "count only":  # iterparse keeping no entry: the parser's own memory
    found = parse_sitemap(body, "https://news.example/sitemap.xml", 0).notes["too_many_urls"]
else:  # the whole tree, for comparison
    found = len(etree.fromstring(body))
seconds = time.process_time() - started
done.set()
sampler.join()
print(json.dumps({"urls": found, "body_mb": len(body) / 1e6,
                  "grew_mb": (max(peak[0], me.memory_info().rss) - before) / 1e6,
                  "cpu_s": seconds}))
"""


def memory_bench(sizes: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for urls in sizes:
            path = Path(tmp) / f"sitemap-{urls}.xml"
            with path.open("w") as out:
                out.write(
                    '<?xml version="1.0"?><urlset '
                    'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
                )
                for i in range(urls):
                    out.write(
                        f"<url><loc>https://news.example/world/2026/11/29/story-{i}</loc>"
                        "<lastmod>2026-11-29T10:00:00+00:00</lastmod></url>\n"
                    )
                out.write("</urlset>\n")
            for how in ("iterparse", "count only", "whole tree"):
                probe = subprocess.run(
                    [sys.executable, "-c", _MEMORY_PROBE, str(path), how],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append({"how": how, **json.loads(probe.stdout)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sitemaps", type=int, default=200)
    parser.add_argument("--urls", type=int, default=1000, help="URLs per sitemap")
    parser.add_argument("--concurrency", type=int, default=16, help="NEWSLOOM_POLL_CONCURRENCY")
    parser.add_argument(
        "--memory-urls",
        type=int,
        default=50_000,
        help="the largest sitemap of the memory run (also 1/10 and 1/100 of it)",
    )
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()

    if not args.memory_only:
        cycles = scheduler_bench(args)
        print(
            f"sources bench: {args.sitemaps} sitemaps x {args.urls} URLs, poll concurrency "
            f"{args.concurrency}, {os.cpu_count()} cores"
        )
        for label, cycle in cycles:
            print(
                f"  {label:22} {cycle['polls_per_s']:8.1f} polls/s  "
                f"{cycle['cpu_ms_per_poll']:7.1f} ms CPU/poll  {cycle['seconds']:7.1f} s  "
                f"{cycle['cpu_ms_per_poll'] * 1000 / args.urls:6.1f} us CPU/URL"
            )
    print("parsing one sitemap (peak RSS growth over the body, fresh interpreter):")
    sizes = sorted(
        {max(1, args.memory_urls // 100), max(1, args.memory_urls // 10), args.memory_urls}
    )
    for row in memory_bench(sizes):
        print(
            f"  {row['how']:10} {row['urls']:7} URLs  body {row['body_mb']:5.1f} MB  "
            f"RSS +{row['grew_mb']:6.1f} MB  CPU {row['cpu_s']:5.2f} s"
        )


if __name__ == "__main__":
    main()
