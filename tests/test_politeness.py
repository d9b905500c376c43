"""Politeness: one request rate per host across workers, robots.txt, and no worker held
while a host's turn has not come."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from urllib.parse import urlsplit

import pytest
from site_fixture import FixtureSite, article_html, synthetic_article
from support import start_workers, stop_workers, wait_until

from newsloom import broker, db, queue
from newsloom.worker.politeness import SEND_MARGIN, HostLimiter

# A wait is counted from Redis' clock when the call ran: of two calls, the later one's wait
# is shorter by the time between them, at most the time from the first call's start to the
# second's end (measured here, so a slow machine widens the bound instead of failing).
GAP = SEND_MARGIN
TICK = 1e-6  # Redis' clock counts microseconds


def timed(call: Callable[[], float]) -> tuple[float, float, float]:
    """(started, result, ended)"""
    started = time.monotonic()
    result = call()
    return started, result, time.monotonic()


def test_slots_are_spaced_and_shared(settings):
    first = HostLimiter(broker.redis_client(settings.redis_url), settings.redis_key_prefix)
    second = HostLimiter(broker.redis_client(settings.redis_url), settings.redis_key_prefix)
    calls = [
        timed(lambda limiter=limiter: limiter.reserve("news.example", 2.0))
        for limiter in (first, second, first, second)
    ]
    assert calls[0][1] == 0
    for (started, earlier, _), (_, later, ended) in pairwise(calls):
        assert 2.0 + GAP - (ended - started) - TICK <= later - earlier <= 2.0 + GAP + TICK
    assert first.reserve("other.example", 2.0) == 0


def test_acquire_keeps_the_gap(settings):
    limiter = HostLimiter(broker.redis_client(settings.redis_url), settings.redis_key_prefix)
    started, granted, _ = timed(lambda: limiter.acquire("news.example", 5.0))
    _, wait, ended = timed(lambda: limiter.acquire("news.example", 5.0))
    assert granted == 0
    assert 5.0 + GAP - (ended - started) - TICK <= wait <= 5.0 + GAP + TICK
    assert limiter.acquire("elsewhere.example", 5.0) == 0


def serve_articles(site, prefix: str, count: int) -> list[str]:
    urls = []
    for i in range(count):
        title, paragraphs = synthetic_article(hash(prefix) % 1000 + i)
        path = f"/{prefix}/{i}"
        site.add(path, article_html(title, paragraphs))
        urls.append(site.url(path))
    return urls


def page_requests(site) -> list:
    return [r for r in site.requests if r.path != "/robots.txt"]


@pytest.mark.timeout(300)
def test_host_rate_robots_and_no_held_worker(site, settings, conn, app_env, tmp_path):
    """Two workers, two hosts (127.0.0.1 and localhost), one fetch thread each: requests to
    a host keep their gap, robots.txt is obeyed, and the hosts are served side by side."""
    site.add(
        "/robots.txt",
        "User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n",
        content_type="text/plain",
    )
    slow_urls = [*serve_articles(site, "a", 8), site.url("/private/secret")]
    site.add("/private/secret", article_html(*synthetic_article(999)))
    with FixtureSite() as other:
        other_urls = [u.replace("127.0.0.1", "localhost") for u in serve_articles(other, "b", 8)]
        db.record_new_urls(conn, None, [(u, None, None) for u in slow_urls + other_urls])
        workers = start_workers(
            app_env, tmp_path, 2, NEWSLOOM_HOST_DELAY="0.3s", NEWSLOOM_FETCH_CONCURRENCY="1"
        )
        try:
            celery = queue.make_app(settings)
            queue.enqueue_fetch(
                [r["id"] for r in conn.execute("SELECT id FROM urls ORDER BY id")], celery
            )
            celery.close()

            def all_final():
                return db.outcome_counts(conn).keys() <= {"stored", "duplicate", "skipped"}

            wait_until(all_final, 120, "every URL to reach an outcome")
        finally:
            stop_workers(workers)
        outcomes = {
            r["url"]: (r["state"], r["reason"])
            for r in conn.execute("SELECT url, state, reason FROM urls")
        }
        other_requests = page_requests(other)

    assert outcomes[site.url("/private/secret")] == ("skipped", "robots")
    assert site.hits("/private/secret") == 0
    assert sum(state == "stored" for state, _ in outcomes.values()) == 16
    for requests, gap in ((page_requests(site), 1.0), (other_requests, 0.3)):
        times = sorted(r.at for r in requests)
        assert len(times) == 8
        smallest = min(b - a for a, b in pairwise(times))
        assert smallest >= gap, f"two requests {smallest:.3f}s apart, below {gap}s"
    # While one host waited for its turn the other was served: their requests interleave.
    first_other = min(r.at for r in other_requests)
    assert first_other < max(r.at for r in page_requests(site))
    assert all(urlsplit(u).hostname == "localhost" for u in other_urls)
