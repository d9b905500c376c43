"""End to end: `newsloom up`, the real processes, a loopback site, real Postgres and Redis.

The feed lists the seed article twice, once with tracking parameters; it must end as one
`articles` row holding the body and none of the page's boilerplate, with its entities,
and two `article_urls` rows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row
from site_fixture import BOILERPLATE_MARKERS, FeedItem, article_html, rss2, seed_article
from support import free_port, wait_until

ARTICLE_PATH = "/world/2017/09/30/iraq-iran-drills"


def serve_seed_feed(site) -> tuple[str, list[str]]:
    title, paragraphs = seed_article()
    site.add(
        ARTICLE_PATH,
        article_html(
            title,
            paragraphs,
            author="Adam Garrie",
            published="2017-09-30T10:00:00+00:00",
            canonical=None,
        ),
    )
    site.add(
        "/feed.xml",
        rss2(
            [
                FeedItem(site.url(ARTICLE_PATH), title),
                FeedItem(
                    site.url(ARTICLE_PATH + "?utm_source=rss&utm_medium=feed&utm_campaign=x"), title
                ),
            ],
            title="The Daily Loom",
            link=site.url("/"),
        ),
        content_type="application/rss+xml",
    )
    return title, paragraphs


def start_up(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "newsloom", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def stop(process: subprocess.Popen, log_path: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(90)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert code == 0, f"newsloom up exited with {code}:\n{log_path.read_text()[-3000:]}"


def base_env(tmp_path: Path, site) -> dict[str, str]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feed]]\nurl = "{site.url("/feed.xml")}"\nname = "Daily Loom"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "NEWSLOOM_FEEDS": str(feeds),
            "NEWSLOOM_ALLOW_PRIVATE_NETWORKS": "true",
            "NEWSLOOM_SCHEDULER_TICK": "0.2s",
            "NEWSLOOM_PROCESS_CONCURRENCY": "1",
            "NEWSLOOM_FETCH_CONCURRENCY": "4",
            "NEWSLOOM_DATA_DIR": str(tmp_path / "data"),
            "NEWSLOOM_HOST_DELAY": "0s",
            "NEWSLOOM_METRICS_PORT": "0",
        }
    )
    return env


def finished(database_url: str, expected: int):
    def check():
        try:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM urls WHERE state NOT IN ('queued', 'fetched')"
                ).fetchone()
                return row[0] >= expected
        except psycopg.Error:
            return False  # schema not applied yet

    return check


def assert_seed_collected(database_url: str, paragraphs: list[str], process, log_path) -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        outcomes = {
            r["state"]: r["n"]
            for r in conn.execute("SELECT state, count(*) AS n FROM urls GROUP BY state")
        }
        assert outcomes == {"stored": 1, "duplicate": 1}, log_path.read_text()[-3000:]
        [article] = conn.execute("SELECT * FROM articles").fetchall()
        entities = {
            (r["name"], r["label"])
            for r in conn.execute(
                """SELECT e.name, e.label FROM entities e
               JOIN article_entities ae ON ae.entity_id = e.id WHERE ae.article_id = %s""",
                (article["id"],),
            )
        }
        article_urls = conn.execute(
            "SELECT url, article_id FROM article_urls ORDER BY id"
        ).fetchall()
    assert (
        article["title"] == "First Iraq and Turkey – now Iraq and Iran hold joint military drills"
    )
    assert article["author"] == "Adam Garrie"
    assert article["language"] == "en"
    assert article["published_at"].year == 2017
    assert article["canonical_url"].endswith(ARTICLE_PATH)
    text = article["text"]
    for paragraph in (paragraphs[0], paragraphs[len(paragraphs) // 2], paragraphs[-1]):
        assert paragraph in text
    for marker in BOILERPLATE_MARKERS:
        assert marker not in text, f"boilerplate {marker!r} in the article text"
    assert {("Iraq", "GPE"), ("Iran", "GPE"), ("Turkey", "GPE"), ("Erdogan", "PERSON")} <= entities
    assert len(article_urls) == 2 and {u["article_id"] for u in article_urls} == {article["id"]}
    assert any("utm_source" in u["url"] for u in article_urls)


def scrape(port: int) -> dict[str, float]:
    """The metrics endpoint, parsed: {'name{label="v"}': value}."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_up_on_given_servers(settings, site, tmp_path):
    """`docker compose` / operators' path: DATABASE_URL and REDIS_URL point at servers;
    the metrics endpoint counts what happened."""
    _, paragraphs = serve_seed_feed(site)
    env = base_env(tmp_path, site)
    port = free_port()
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "NEWSLOOM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "NEWSLOOM_METRICS_PORT": str(port),
        }
    )
    log_path = tmp_path / "up.log"
    process = start_up(env, log_path)
    try:
        wait_until(finished(settings.database_url, 2), 120, "both URLs to reach an outcome")
        metrics = wait_until(
            lambda: (m := scrape(port)).get("newsloom_duplicates_total") and m,
            30,
            "the metrics to count the duplicate",
        )
    finally:
        stop(process, log_path)
    assert_seed_collected(settings.database_url, paragraphs, process, log_path)
    assert site.hits("/feed.xml") >= 1
    assert metrics["newsloom_articles_stored_total"] == 1
    assert metrics["newsloom_duplicates_total"] == 1
    assert metrics['newsloom_url_outcomes_total{outcome="stored",reason=""}'] == 1
    assert metrics["newsloom_fetch_seconds_count"] == 2
    assert metrics["newsloom_urls_enqueued_total"] == 2
    assert metrics['newsloom_feed_polls_total{result="new"}'] >= 1
    assert metrics['newsloom_queue_depth{queue="fetch"}'] == 0


@pytest.mark.timeout(400)
def test_up_with_embedded_servers(site, tmp_path):
    """`make run`'s path: no DATABASE_URL / REDIS_URL, so embedded servers start."""
    _, paragraphs = serve_seed_feed(site)
    env = base_env(tmp_path, site)
    log_path = tmp_path / "up.log"
    process = start_up(env, log_path)
    try:
        printed = wait_until(
            lambda: re.search(r"psql '([^']+)'", log_path.read_text()),
            120,
            "the psql connection string",
        )
        database_url = printed.group(1)
        wait_until(finished(database_url, 2), 180, "both URLs to reach an outcome")
        assert_seed_collected(database_url, paragraphs, process, log_path)
    finally:
        stop(process, log_path)
    # Data kept under NEWSLOOM_DATA_DIR, and both servers stopped with the pipeline.
    assert (tmp_path / "data" / "redis" / "appendonly.aof").exists() or (
        tmp_path / "data" / "redis" / "appendonlydir"
    ).is_dir()
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()
