"""Fault injection over a loopback site of a few hundred pages (issue: nothing lost).

While `newsloom up` collects, the fetch worker's main process is killed with SIGKILL
(with the fetches it holds), so is a process-pool worker, the broker (a private
redis-server without persistence) goes away for 10 s and comes back empty, is killed and
comes back from its append-only file, goes away again while fetches (some slow) are in
flight, and every Postgres connection of the pipeline is terminated. `up` must still be
running at the end, every good article stored exactly once within two minutes of the
last fault, every copy attached as a duplicate, every bad URL skipped with its reason,
and nothing left in flight. A second run keeps the broker away for minutes while fetches
are in flight and the feeds gain entries: no process of `up` may end.

Sizes: NEWSLOOM_FAULT_PAGES (default 200 in the suite; `make faults` runs 1000) and
NEWSLOOM_OUTAGE_SECONDS (default 30 in the suite; `make faults` runs 300).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
from psycopg.rows import dict_row
from site_fixture import FeedItem, article_html, rss2, synthetic_article
from support import PrivateRedis, wait_until

PAGES = int(os.environ.get("NEWSLOOM_FAULT_PAGES", "200"))
OUTAGE_SECONDS = float(os.environ.get("NEWSLOOM_OUTAGE_SECONDS", "30"))
FEEDS = 4
# Short enough that faults meet work in progress; the same for both runs.
FAULT_SETTINGS = {
    "NEWSLOOM_VISIBILITY_TIMEOUT": "60s",
    "NEWSLOOM_RETRY_BASE": "0.5s",
    "NEWSLOOM_RETRY_CAP": "5s",
    "NEWSLOOM_FETCH_TIMEOUT": "1s",
    "NEWSLOOM_MAX_REDIRECTS": "3",
    "NEWSLOOM_TASK_TIME_LIMIT": "30s",
    "NEWSLOOM_MAX_ATTEMPTS": "8",
    "NEWSLOOM_LOST_MESSAGE_AFTER": "5s",
    "NEWSLOOM_RECONCILE_INTERVAL": "3s",
    "NEWSLOOM_PROCESS_CONCURRENCY": "2",
    "NEWSLOOM_FETCH_CONCURRENCY": "2",
}
BAD = {  # path -> (how it is served, the reason it must end with)
    "/bad/missing": (None, "http_404"),
    "/bad/report.pdf": (
        {"body": b"%PDF-1.7" + b"\0" * 4000, "content_type": "application/pdf"},
        "not_html",
    ),
    "/bad/empty": ({"body": "<html><body><nav>Home</nav></body></html>"}, "no_text"),
    "/bad/loop": (
        {"body": "", "status": 302, "headers": {"Location": "/bad/loop"}},
        "too_many_redirects",
    ),
}


def add_page(site, i: int) -> FeedItem:
    title, paragraphs = synthetic_article(i)
    path = f"/news/{i}"
    # A little server time per page, so the run lasts long enough to be hit by faults.
    # Every 7th page is slow, so that some fetches are in flight when the broker goes.
    site.add(
        path,
        article_html(title, paragraphs, author="Staff", canonical=site.url(path)),
        delay=0.8 if i % 7 == 0 else 0.3,
    )
    return FeedItem(site.url(path), title)


def publish_feeds(site, feeds: dict[str, list[FeedItem]]) -> None:
    for path, items in feeds.items():
        site.add(
            path, rss2(items, title=path, link=site.url("/")), content_type="application/rss+xml"
        )


def build_site(site) -> dict[str, list[FeedItem]]:
    feeds: dict[str, list[FeedItem]] = {f"/feed/{n}.xml": [] for n in range(FEEDS)}
    for i in range(PAGES):
        item = add_page(site, i)
        feeds[f"/feed/{i % FEEDS}.xml"].append(item)
        if i % 10 == 0:  # the same story with tracking parameters, in another feed
            feeds[f"/feed/{(i + 1) % FEEDS}.xml"].append(
                FeedItem(item.url + "?utm_source=newsletter&utm_medium=email", item.title)
            )
    for n, (path, (served, _)) in enumerate(BAD.items()):
        if served:
            site.add(path, **served)
        feeds[f"/feed/{n % FEEDS}.xml"].append(FeedItem(site.url(path), "bad"))
    publish_feeds(site, feeds)
    return feeds


def write_feeds_file(settings, site, feeds, interval: str = "1h") -> None:
    settings.feeds.write_text(
        "".join(f'[[feed]]\nurl = "{site.url(p)}"\ninterval = "{interval}"\n\n' for p in feeds)
    )


def start_up(env: dict[str, str], log_path) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "newsloom", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def stop_up(up: subprocess.Popen) -> None:
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        up.wait(120)


def progress(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM urls GROUP BY state").fetchall())


def wait_settled(settings, expected_urls: int, timeout: float, what: str) -> None:
    """Wait until every expected URL is in the ledger and none is still in flight; if
    that does not come, say where the URLs stand."""

    def settled() -> bool:
        counts = progress(settings.database_url)
        return sum(counts.values()) == expected_urls and not (
            counts.get("queued") or counts.get("fetched")
        )

    try:
        wait_until(settled, timeout, what, interval=0.5)
    except AssertionError as exc:
        counts = progress(settings.database_url)
        raise AssertionError(f"{exc}; of {expected_urls} URLs, by state: {counts}") from None


def fetch_worker(up: subprocess.Popen) -> psutil.Process:
    """The fetch worker's main process (a child of `up`)."""
    for proc in psutil.Process(up.pid).children():
        try:
            cmdline = proc.cmdline()
        except psutil.Error:  # gone, or dead and not yet reaped
            continue
        if "--queues" in cmdline and cmdline[cmdline.index("--queues") + 1] == "fetch":
            return proc
    raise AssertionError("no fetch worker found")


def process_pool_child(up: subprocess.Popen) -> psutil.Process:
    for proc in psutil.Process(up.pid).children(recursive=True):
        parent = proc.parent()
        if (
            parent
            and "process" in parent.cmdline()
            and "prefork" in parent.cmdline()
            and parent.pid != up.pid
        ):
            return proc
    raise AssertionError("no process-pool child found")


@pytest.mark.timeout(900)
def test_nothing_lost_under_faults(site, settings, tmp_path, app_env, capsys):
    feeds = build_site(site)
    write_feeds_file(settings, site, feeds)
    expected_urls = sum(len(items) for items in feeds.values())
    duplicates = sum(1 for i in range(PAGES) if i % 10 == 0)
    broker = PrivateRedis(tmp_path)
    broker.start()
    env = {**app_env, "REDIS_URL": broker.url, **FAULT_SETTINGS}
    log_path = tmp_path / "up.log"
    up = start_up(env, log_path)
    faults = []
    started = time.monotonic()
    try:

        def done_at_least(share):
            def check():
                counts = progress(settings.database_url)
                return (
                    sum(counts.get(s, 0) for s in ("stored", "duplicate", "skipped"))
                    >= share * expected_urls
                )

            return check

        def fetched_at_least(share):
            def check():
                counts = progress(settings.database_url)
                return sum(counts.values()) - counts.get("queued", 0) >= share * expected_urls

            return check

        # Faults that need fetches in flight first, paced by fetching (slower than
        # processing here: two fetch threads, pages served in 0.3-0.8 s).
        wait_until(fetched_at_least(0.1), 180, "10% of the URLs to be fetched")
        wait_until(lambda: fetches_in_flight(site), 30, "a fetch in flight", interval=0.02)
        fetcher = fetch_worker(up)
        fetcher.send_signal(signal.SIGKILL)
        faults.append("SIGKILL to the fetch worker's main process")
        wait_until(
            lambda: _fetch_worker_pid(up) not in (None, fetcher.pid),
            60,
            "the fetch worker to be restarted",
        )

        wait_until(fetched_at_least(0.25), 180, "25% of the URLs to be fetched")
        broker.stop()
        time.sleep(10)  # the outage itself: nothing to wait for
        broker.start()
        faults.append("Redis away 10 s, back empty")

        wait_until(fetched_at_least(0.35), 180, "35% of the URLs to be fetched")
        broker.with_aof()
        wait_until(lambda: fetches_in_flight(site), 30, "a fetch in flight", interval=0.02)
        broker.stop()  # SIGKILL: a crash, not a clean shutdown
        broker.start(from_aof=True)
        assert broker.dbsize() > 0  # the queues and reservations came back
        faults.append("Redis killed with fetches in flight, back from its append-only file")

        wait_until(fetched_at_least(0.45), 180, "45% of the URLs to be fetched")
        wait_until(lambda: fetches_in_flight(site), 30, "a fetch in flight", interval=0.02)
        broker.stop()
        time.sleep(3)
        broker.start()
        faults.append("Redis away 3 s with fetches in flight, back empty")

        wait_until(done_at_least(0.6), 180, "60% of the URLs to finish")
        process_pool_child(up).send_signal(signal.SIGKILL)
        faults.append("SIGKILL to a process-pool worker")

        wait_until(done_at_least(0.8), 180, "80% of the URLs to finish")
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            killed = admin.execute(
                """SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()) t"""
            ).fetchone()[0]
        faults.append(f"{killed} Postgres connections terminated")
        last_fault = time.monotonic()

        wait_settled(
            settings,
            expected_urls,
            120,
            "every URL to reach an outcome within 2 min of the last fault",
        )
        settled_after = time.monotonic() - last_fault
        assert up.poll() is None, f"newsloom up died:\n{log_path.read_text()[-4000:]}"
    finally:
        stop_up(up)
        broker.stop()
    elapsed = time.monotonic() - started

    urls, stored_urls, dead, events, figures = outcome(settings, expected_urls)
    figures.update(
        {
            "faults": len(faults),
            "seconds": round(elapsed, 1),
            "settled after the last fault (s)": round(settled_after, 1),
            "restarts": log_path.read_text().count("process restarted"),
        }
    )
    with capsys.disabled():
        print(f"\nfault run: {PAGES} pages; faults: {'; '.join(faults)}")
        print("fault run: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    assert figures["restarts"] == 1  # the fetch worker, once; nothing else died
    assert dead == [], dead
    assert figures["lost"] == 0 and figures["articles stored twice"] == 0
    assert stored_urls == {site.url(f"/news/{i}") for i in range(PAGES)}
    assert figures["stored"] == PAGES and figures["duplicate"] == duplicates
    # The outbox through the same faults: one event per stored article and attached copy.
    assert events == {"stored": PAGES, "duplicate": duplicates}
    for path, (_, reason) in BAD.items():
        assert (urls[site.url(path)]["state"], urls[site.url(path)]["reason"]) == (
            "skipped",
            reason,
        )


@pytest.mark.timeout(600 + OUTAGE_SECONDS)
def test_a_long_broker_outage_ends_no_process(site, settings, tmp_path, app_env, capsys):
    """The broker away for OUTAGE_SECONDS while fetches are in flight and the feeds gain
    entries that the scheduler cannot send: every process of `up` waits it out (none
    exits or is restarted), and afterwards every URL, old and new, is stored once."""
    first, late = 40, 20
    feeds: dict[str, list[FeedItem]] = {f"/feed/{n}.xml": [] for n in range(FEEDS)}
    for i in range(first):
        feeds[f"/feed/{i % FEEDS}.xml"].append(add_page(site, i))
    publish_feeds(site, feeds)
    write_feeds_file(settings, site, feeds, interval="2s")
    broker = PrivateRedis(tmp_path)
    broker.start()
    log_path = tmp_path / "up.log"
    up = start_up({**app_env, "REDIS_URL": broker.url, **FAULT_SETTINGS}, log_path)

    def children() -> set[int]:
        return {child.pid for child in psutil.Process(up.pid).children()}

    try:
        wait_until(
            lambda: sum(progress(settings.database_url).values()) >= first, 120, "the feeds read"
        )
        wait_until(lambda: fetches_in_flight(site), 60, "a fetch in flight", interval=0.02)
        before = children()
        broker.stop()
        outage_started = time.monotonic()
        for i in range(first, first + late):
            feeds[f"/feed/{i % FEEDS}.xml"].append(add_page(site, i))
        publish_feeds(site, feeds)
        # The outage itself: watched each second, every process of `up` must stay.
        while (left := OUTAGE_SECONDS - (time.monotonic() - outage_started)) > 0:
            assert up.poll() is None, f"newsloom up ended:\n{log_path.read_text()[-4000:]}"
            assert children() == before, f"a process ended:\n{log_path.read_text()[-4000:]}"
            time.sleep(min(1.0, left))
        broker.start()
        back = time.monotonic()
        wait_settled(
            settings, first + late, 180, "every URL to reach an outcome within 3 min of the return"
        )
        settled_after = time.monotonic() - back
        assert up.poll() is None and children() == before
    finally:
        stop_up(up)
        broker.stop()
    _, stored_urls, dead, _, figures = outcome(settings, first + late)
    figures.update(
        {
            "outage (s)": OUTAGE_SECONDS,
            "settled after the broker's return (s)": round(settled_after, 1),
            "restarts": log_path.read_text().count("process restarted"),
        }
    )
    with capsys.disabled():
        print("\nlong outage: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    assert figures["restarts"] == 0 and dead == []
    assert figures["lost"] == 0 and figures["articles stored twice"] == 0
    assert stored_urls == {site.url(f"/news/{i}") for i in range(first + late)}


def outcome(settings, expected_urls: int) -> tuple[dict, set[str], list, dict, dict]:
    """The ledger by URL, the stored articles' URLs, the dead letters, the events by kind,
    and the run's figures: URLs by state, lost, articles stored twice."""
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        urls = {r["url"]: r for r in conn.execute("SELECT url, state, reason FROM urls")}
        articles = conn.execute("SELECT url, canonical_url FROM articles").fetchall()
        dead = conn.execute("SELECT error FROM dead_letters").fetchall()
        events = {
            r["kind"]: r["n"]
            for r in conn.execute("SELECT kind, count(*) AS n FROM events GROUP BY kind")
        }
    stored_urls = {a["canonical_url"] for a in articles}
    states = [r["state"] for r in urls.values()]
    figures = {
        "urls": len(urls),
        "stored": states.count("stored"),
        "duplicate": states.count("duplicate"),
        "skipped": states.count("skipped"),
        "dead": states.count("dead"),
        "lost": expected_urls - len(urls) + states.count("queued") + states.count("fetched"),
        "articles stored twice": len(articles) - len(stored_urls),
    }
    return urls, stored_urls, dead, events, figures


def _fetch_worker_pid(up: subprocess.Popen) -> int | None:
    try:
        return fetch_worker(up).pid
    except AssertionError:
        return None


def fetches_in_flight(site) -> bool:
    """A slow page (0.8 s) is being served right now: asked for within the last 0.5 s."""
    now = time.monotonic()
    return any(
        now - r.at < 0.5 and r.path.startswith("/news/") and int(urlsplit(r.path).path[6:]) % 7 == 0
        for r in list(site.requests)[-50:]
    )
