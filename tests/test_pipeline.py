"""The worker steps and the retry policy over bad inputs: every URL ends with its reason.

Steps run in-process (no Celery) against real Postgres and a loopback site; the retry
delays are skipped, the decisions are the real ones.
"""

from __future__ import annotations

import gzip
import socket

import pytest
from site_fixture import article_html, seed_article
from support import run_step, run_url

from newsloom import db
from newsloom.worker.pipeline import fetch_step, process_step, settle_failure


def test_good_page_is_stored(ctx, site):
    title, paragraphs = seed_article()
    site.add("/a", article_html(title, paragraphs, author="A"))
    assert run_url(ctx, site.url("/a"))["state"] == "stored"


def page_of(words: str) -> str:
    return article_html("A title", [words * 20, words * 15])


@pytest.mark.parametrize(
    "path, kwargs, reason",
    [
        ("/missing", None, "http_404"),
        ("/gone", {"body": "gone", "status": 410}, "http_410"),
        (
            "/report.pdf",
            {"body": b"%PDF-1.7\n" + b"\0" * 5000, "content_type": "application/pdf"},
            "not_html",
        ),
        (
            "/photo.png",
            {"body": b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, "content_type": "image/png"},
            "not_html",
        ),
        (
            "/huge",
            {"body": "<html><body>" + "<p>word</p>" * 6_000_000 + "</body></html>"},
            "too_large",
        ),
        (
            "/bomb",
            {
                "body": gzip.compress(b"<html>" + b" " * 100_000_000),
                "headers": {"Content-Encoding": "gzip"},
            },
            "too_large",
        ),
        (
            "/empty",
            {"body": "<html><body><nav><a href='/'>Home</a></nav></body></html>"},
            "no_text",
        ),
        ("/forbidden", {"body": "no", "status": 403}, "http_403"),
    ],
)
def test_bad_pages_end_skipped_with_reason(ctx, site, path, kwargs, reason):
    if kwargs:
        site.add(path, **kwargs)
    row = run_url(ctx, site.url(path))
    assert (row["state"], row["reason"]) == ("skipped", reason)


def test_redirect_loop(ctx, site):
    site.add("/a", "", status=302, headers={"Location": "/b"})
    site.add("/b", "", status=302, headers={"Location": "/a"})
    row = run_url(ctx, site.url("/a"))
    assert (row["state"], row["reason"]) == ("skipped", "too_many_redirects")


def test_unsupported_scheme(ctx):
    row = run_url(ctx, "ftp://example.org/story")
    assert (row["state"], row["reason"]) == ("skipped", "bad_url")


@pytest.mark.parametrize(
    "declared, encoding",
    [
        ("", "cp1252"),  # no charset anywhere
        ("; charset=iso-8859-1", "utf-8"),  # the header lies
    ],
)
def test_missing_or_wrong_charset_still_reads(ctx, site, declared, encoding):
    text = "Le café de la gare a rouvert ses portes à Besançon après des années d'attente. " * 6
    html = (
        "<html><head><title>Café</title></head>"
        f"<body><article><p>{text}</p></article></body></html>"
    )
    site.add("/fr", html.encode(encoding), content_type="text/html" + declared)
    row = run_url(ctx, site.url("/fr"))
    assert row["state"] == "stored"
    with ctx.pool.connection() as conn:
        stored = conn.execute(
            "SELECT text FROM articles WHERE id = %s", (row["article_id"],)
        ).fetchone()
    assert "Le café de la gare" in stored["text"] and "Besançon" in stored["text"]


def test_server_that_hangs_is_retried_then_dead_lettered(ctx, site):
    site.add("/slow", page_of("slow "), delay=3)
    row = run_url(ctx, site.url("/slow"))
    assert (row["state"], row["reason"]) == ("dead", "ReadTimeout")
    assert row["attempts"] == 2  # the second failure was the last attempt
    with ctx.pool.connection() as conn:
        [letter] = conn.execute("SELECT * FROM dead_letters").fetchall()
    assert letter["task"] == "newsloom.fetch" and letter["attempts"] == 2
    assert letter["payload"] == {"url_id": row["id"]} and "ReadTimeout" in letter["traceback"]


def test_connection_reset_is_transient(ctx, site):
    def reset(_request):
        raise ConnectionResetError  # the handler dies: the server closes the socket unanswered

    site.add_handler("/reset", reset)
    row = run_url(ctx, site.url("/reset"))
    assert row["state"] == "dead" and row["reason"] == "RemoteProtocolError"


def test_dns_failure_is_transient(ctx, monkeypatch):
    real = socket.getaddrinfo

    def no_such_host(host, *args, **kwargs):  # the article's host only, not Redis'
        if host != "no-such-host.invalid":
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    row = run_url(ctx, "http://no-such-host.invalid/story")
    assert row["state"] == "dead" and row["reason"] == "ConnectError"


def test_503_then_success_is_stored(ctx, site):
    calls = []

    def flaky(_request):
        calls.append(1)
        if len(calls) == 1:
            return 503, {"Retry-After": "0"}, b"busy"
        return 200, {"Content-Type": "text/html"}, page_of("recovered ").encode()

    site.add_handler("/flaky", flaky)
    row = run_url(ctx, site.url("/flaky"))
    assert row["state"] == "stored" and row["attempts"] == 1


def test_steps_run_twice_leave_the_same_rows(ctx, site):
    title, paragraphs = seed_article()
    site.add("/a", article_html(title, paragraphs))
    row = run_url(ctx, site.url("/a"))
    assert fetch_step(ctx, row["id"]) is False  # already past fetching
    assert process_step(ctx, row["id"]) is None  # already stored
    with ctx.pool.connection() as conn:
        counts = conn.execute("""SELECT (SELECT count(*) FROM articles) a,
                                        (SELECT count(*) FROM article_urls) u,
                                        (SELECT count(*) FROM article_entities) e""").fetchone()
        conn.execute("UPDATE urls SET state = 'fetched' WHERE id = %s", (row["id"],))
    # A redelivered process message after a crash between store and ack:
    assert process_step(ctx, row["id"]) == "stored"
    with ctx.pool.connection() as conn:
        again = conn.execute("""SELECT (SELECT count(*) FROM articles) a,
                                       (SELECT count(*) FROM article_urls) u,
                                       (SELECT count(*) FROM article_entities) e""").fetchone()
    assert again == counts


def test_robots_disallow_and_a_feed_that_turns_robots_off(ctx, site, conn):
    site.add("/robots.txt", "User-agent: *\nDisallow: /members/\n", content_type="text/plain")
    site.add("/members/a", page_of("members "))
    site.add("/members/b", page_of("owners "))
    assert (run_url(ctx, site.url("/members/a"))["reason"]) == "robots"
    assert site.hits("/members/a") == 0
    db.sync_feeds(conn, [(site.url("/own-feed"), "Mine", 900, None, False)])
    [feed] = db.list_feeds(conn)
    assert run_url(ctx, site.url("/members/b"), feed["id"])["state"] == "stored"


def test_a_page_that_kills_its_worker_ends_dead_lettered(ctx, site, conn):
    """Each delivery of the process step counts; a page whose worker dies every time (the
    step never returns) is dead-lettered instead of being redelivered forever."""
    title, paragraphs = seed_article()
    site.add("/a", article_html(title, paragraphs))
    [url_id] = db.record_new_urls(conn, None, [(site.url("/a"), None, None)])
    run_step(ctx, fetch_step, "newsloom.fetch", url_id)
    assert db.get_url(conn, url_id)["state"] == "fetched"
    conn.execute(
        "UPDATE urls SET deliveries = %s WHERE id = %s", (ctx.settings.max_attempts, url_id)
    )
    with pytest.raises(Exception) as caught:
        process_step(ctx, url_id)
    assert settle_failure(ctx, "newsloom.process", url_id, caught.value) is None
    row = db.get_url(conn, url_id)
    assert (row["state"], row["reason"]) == ("dead", "Poisoned")
