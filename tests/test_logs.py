"""Logs: JSON lines on request; every line about a URL names it, its feed and its task;
expected outcomes are info lines without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from site_fixture import article_html, seed_article
from support import start_workers, stop_workers, wait_until

from newsloom import db, queue


def test_json_lines_name_the_url_feed_and_task(site, settings, conn, app_env, tmp_path):
    title, paragraphs = seed_article()
    site.add("/good", article_html(title, paragraphs))
    db.sync_feeds(conn, [(site.url("/feed"), "Loom", 900, None, True)])
    [feed] = db.list_feeds(conn)
    ids = db.record_new_urls(
        conn, feed["id"], [(site.url("/good"), None, None), (site.url("/gone"), None, None)]
    )
    workers = start_workers(app_env, tmp_path, NEWSLOOM_LOG_FORMAT="json")
    try:
        celery = queue.make_app(settings)
        queue.enqueue_fetch(ids, celery)
        celery.close()
        wait_until(
            lambda: db.outcome_counts(conn) == {"stored": 1, "skipped": 1}, 90, "both URLs to end"
        )
    finally:
        stop_workers(workers)
    lines = [
        json.loads(line)
        for line in (tmp_path / "worker0.log").read_text().splitlines()
        if line.startswith("{")
    ]
    about_urls = [line for line in lines if "url_id" in line]
    assert {line["event"] for line in about_urls} >= {"skipped", "article"}
    for line in about_urls:
        assert line["url"] in (site.url("/good"), site.url("/gone"))
        assert line["feed"] == site.url("/feed") and line["task_id"]
    [skipped] = [line for line in about_urls if line["event"] == "skipped"]
    assert skipped["level"] == "info" and skipped["reason"] == "http_404"
    assert not any("Traceback" in json.dumps(line) for line in lines)


# In a process of its own: configuring logging changes the root logger for good.
LOG_AN_ERROR = """
from newsloom import log, settings
log.configure(settings.load_settings())
try:
    raise ZeroDivisionError("the cause")
except ZeroDivisionError:
    log.get_logger("newsloom.test").exception("cycle failed")
"""


def test_json_lines_keep_an_unexpected_errors_traceback(app_env):
    done = subprocess.run(
        [sys.executable, "-c", LOG_AN_ERROR],
        env={**app_env, "NEWSLOOM_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    [line] = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert line["event"] == "cycle failed" and line["level"] == "error"
    assert "Traceback" in line["exception"] and "ZeroDivisionError: the cause" in line["exception"]
