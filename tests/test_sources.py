"""Sources beyond RSS: JSON Feed, sitemaps, sitemap indexes, news sitemaps, section pages,
gzip, the feed keys (type, include, exclude, since) and bad input, against a loopback site."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from site_fixture import FeedItem, rss2, section_page, sitemap, sitemap_index

from newsloom import db, web
from newsloom.errors import Permanent
from newsloom.scheduler.poll import SourceRules, poll_feed
from newsloom.scheduler.service import Scheduler
from newsloom.scheduler.sources import parse_json_feed, parse_sitemap, ungzip

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(settings):
    with web.make_client(settings) as http_client:
        yield http_client


def stories(site, n: int, *, prefix: str = "/news/", age: timedelta = timedelta(hours=1)):
    return [FeedItem(site.url(f"{prefix}{i}"), f"Story {i}", published=NOW - age) for i in range(n)]


def json_feed(items: list[dict], version: str = "1.1") -> str:
    return json.dumps(
        {"version": f"https://jsonfeed.org/version/{version}", "title": "J", "items": items}
    )


# --- JSON Feed and feed links -------------------------------------------------------------


def test_json_feed(site, client, settings):
    site.add(
        "/feed.json",
        json_feed(
            [
                {
                    "id": "1",
                    "url": "/posts/1",
                    "title": "One",
                    "date_published": "2026-11-01T10:00:00Z",
                    "date_modified": "2026-11-02T10:00:00+01:00",
                },
                {"id": "2", "external_url": site.url("/elsewhere"), "title": "Two"},
                {"id": site.url("/posts/3")},
                {"id": "no-link"},
            ]
        ),
        content_type="text/plain",
    )  # served with the wrong type: the body decides
    result = poll_feed(client, site.url("/feed.json"), settings)
    assert result.kind == "json11"
    assert [e.url for e in result.entries] == [
        site.url("/posts/1"),
        site.url("/elsewhere"),
        site.url("/posts/3"),
    ]
    first = result.entries[0]
    assert first.published_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert first.updated_at == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert first.title == "One" and result.rejected_links == 1


def test_json_feed_version_1_and_bad_json():
    assert parse_json_feed(json_feed([], "1").encode(), "https://a.example/").kind == "json10"
    with pytest.raises(Permanent, match="not_a_feed"):
        parse_json_feed(b'{"items": []}', "https://a.example/")
    with pytest.raises(Permanent, match="malformed_feed"):
        parse_json_feed(b'{"version": ', "https://a.example/")


def test_feed_links_origlink_guid_and_xml_base(site, client, settings):
    site.add(
        "/feed",
        f"""<?xml version="1.0"?>
<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0">
<channel xml:base="{site.url("/section/")}"><title>T</title><link>{site.url("/")}</link>
<item><title>a</title><link>http://feeds.example/~r/a</link>
  <feedburner:origLink>{site.url("/real/a")}</feedburner:origLink></item>
<item><title>b</title><guid>{site.url("/guid/b")}</guid></item>
<item><title>c</title><link>c.html</link></item>
<item><title>d</title><guid isPermaLink="false">tag:d</guid></item>
</channel></rss>""",
        content_type="application/rss+xml",
    )
    result = poll_feed(client, site.url("/feed"), settings)
    assert [e.url for e in result.entries] == [
        site.url("/real/a"),
        site.url("/guid/b"),
        site.url("/section/c.html"),
    ]
    assert result.rejected_links == 1 and result.kind == "rss20"


# --- sitemaps -----------------------------------------------------------------------------


def test_sitemap_news_sitemap_and_gzip(site, client, settings):
    site.add("/sitemap.xml", sitemap(stories(site, 3)), content_type="application/xml")
    site.add(
        "/news.xml.gz",
        gzip.compress(sitemap(stories(site, 2, prefix="/n/"), news=True).encode()),
        content_type="application/x-gzip",
    )
    plain = poll_feed(client, site.url("/sitemap.xml"), settings)
    assert plain.kind == "sitemap" and len(plain.entries) == 3
    assert plain.entries[0].published_at == NOW - timedelta(hours=1)
    news = poll_feed(client, site.url("/news.xml.gz"), settings)
    assert news.kind == "news_sitemap"
    assert [(e.url, e.title) for e in news.entries] == [
        (site.url("/n/0"), "Story 0"),
        (site.url("/n/1"), "Story 1"),
    ]
    assert news.entries[0].published_at == NOW - timedelta(hours=1)
    assert news.entries[0].updated_at is None  # a URL in the ledger is not fetched again


def test_sitemap_index_nested_with_loop_and_depth(site, client, settings):
    def child(name: str) -> str:
        return site.url(f"/sitemaps/{name}.xml")

    site.add(
        "/sitemap_index.xml",
        sitemap_index(
            [(child("a"), NOW), (site.url("/sitemap_index.xml"), None), (child("nested"), None)]
        ),
    )
    site.add("/sitemaps/a.xml", sitemap(stories(site, 2, prefix="/a/")))
    site.add("/sitemaps/nested.xml", sitemap_index([(child("b"), None), (child("d1"), None)]))
    site.add("/sitemaps/b.xml.gz", "")  # never asked for: the index names b.xml
    site.add("/sitemaps/b.xml", sitemap(stories(site, 1, prefix="/b/")))
    # d1 -> d2 -> d3 -> d4: the last is one level too deep.
    for level in range(1, 4):
        site.add(f"/sitemaps/d{level}.xml", sitemap_index([(child(f"d{level + 1}"), None)]))
    site.add("/sitemaps/d4.xml", sitemap(stories(site, 1, prefix="/deep/")))
    result = poll_feed(client, site.url("/sitemap_index.xml"), settings)
    assert result.kind == "sitemap_index"
    assert sorted(e.url for e in result.entries) == [
        site.url("/a/0"),
        site.url("/a/1"),
        site.url("/b/0"),
    ]
    assert "sitemap_loop=1" in result.note and "index_too_deep=1" in result.note
    assert site.hits("/sitemap_index.xml") == 1 and site.hits("/sitemaps/d4.xml") == 0


def test_index_reads_only_children_changed_since_last_poll(site, client, settings):
    site.add(
        "/index.xml",
        sitemap_index(
            [(site.url("/old.xml"), NOW - timedelta(days=3)), (site.url("/new.xml"), NOW)]
        ),
    )
    site.add("/old.xml", sitemap(stories(site, 1, prefix="/old/", age=timedelta(days=3))))
    site.add("/new.xml", sitemap(stories(site, 1, prefix="/new/")))
    rules = SourceRules(read_until=NOW - timedelta(days=3))
    result = poll_feed(client, site.url("/index.xml"), settings, rules=rules)
    assert [e.url for e in result.entries] == [site.url("/new/0")]
    assert site.hits("/old.xml") == 0 and result.note == "child_unchanged=1"
    assert result.read_until == NOW


def test_index_budget_and_failures_leave_children_for_the_next_poll(site, client, settings):
    days = [NOW - timedelta(days=d) for d in (3, 2, 1)]
    site.add(
        "/index.xml", sitemap_index([(site.url(f"/s{i}.xml"), day) for i, day in enumerate(days)])
    )
    for i in range(3):
        site.add(f"/s{i}.xml", sitemap(stories(site, 1, prefix=f"/s{i}/")))
    site.add("/s1.xml", "busy", status=503)
    one_a_poll = settings.model_copy(update={"sitemap_children_per_poll": 1})
    first = poll_feed(client, site.url("/index.xml"), one_a_poll)
    assert [e.url for e in first.entries] == [site.url("/s0/0")]  # the oldest first
    assert first.read_until == days[0] and first.note == "children_left_for_later=2"
    # s1 fails for now: s2 is read, but the mark stays before s1, so s1 is tried again.
    second = poll_feed(
        client, site.url("/index.xml"), settings, rules=SourceRules(read_until=first.read_until)
    )
    assert [e.url for e in second.entries] == [site.url("/s2/0")]
    assert second.read_until == days[0] and "child_Transient=1" in second.note
    site.add("/s1.xml", sitemap(stories(site, 1, prefix="/s1/")))
    third = poll_feed(
        client, site.url("/index.xml"), settings, rules=SourceRules(read_until=second.read_until)
    )
    assert {e.url for e in third.entries} == {site.url("/s1/0"), site.url("/s2/0")}
    assert third.read_until == days[2]


def test_since_leaves_out_older_urls(site, client, settings):
    items = stories(site, 2) + stories(site, 3, prefix="/archive/", age=timedelta(days=30))
    site.add("/sitemap.xml", sitemap(items))
    result = poll_feed(
        client, site.url("/sitemap.xml"), settings, rules=SourceRules(since=NOW - timedelta(days=2))
    )
    assert [e.url for e in result.entries] == [site.url("/news/0"), site.url("/news/1")]
    assert result.note == "older_than_since=3"


# --- section pages and the include / exclude keys -------------------------------------------


def test_section_page_include_exclude_and_hosts(site, client, settings):
    page = section_page(
        [
            (site.url("/world/2026/11/29/story-1"), "Story one"),
            ("/world/2026/11/29/story-2#comments", "Story two"),
            ("/world/2026/11/29/live", "Live"),
            ("https://other.example/world/2026/x", "Elsewhere"),
        ]
    )
    site.add("/world/", page, etag='"p1"')
    rules = SourceRules(type="page", include=re.compile("/world/20"), exclude=re.compile("/live$"))
    result = poll_feed(client, site.url("/world/"), settings, rules=rules)
    assert result.kind == "page"
    assert [(e.url, e.title) for e in result.entries] == [
        (site.url("/world/2026/11/29/story-1"), "Story one"),
        (site.url("/world/2026/11/29/story-2"), "Story two"),
        ("https://other.example/world/2026/x", "Elsewhere"),
    ]  # include allows other hosts
    assert result.note == "excluded=1, not_included=4"
    again = poll_feed(client, site.url("/world/"), settings, rules=rules, etag=result.etag)
    assert again.not_modified  # conditional GET as for feeds
    # Without include, only the page's own host is kept.
    own = poll_feed(client, site.url("/world/"), settings, rules=SourceRules(type="page"))
    assert "https://other.example/world/2026/x" not in {e.url for e in own.entries}
    assert "other_host=1" in own.note


# --- bad input ----------------------------------------------------------------------------


def test_html_error_page_served_as_sitemap(site, client, settings):
    site.add("/sitemap.xml", "<!DOCTYPE html><html><body><h1>Oops</h1></body></html>")
    with pytest.raises(Permanent, match="not_a_sitemap: the document is an HTML page"):
        poll_feed(client, site.url("/sitemap.xml"), settings, rules=SourceRules(type="sitemap"))
    with pytest.raises(Permanent, match=r'not_a_feed: an HTML page .set type = "page"'):
        poll_feed(client, site.url("/sitemap.xml"), settings)


def test_truncated_gzip():
    whole = gzip.compress(sitemap([FeedItem("https://a.example/1", "x")]).encode())
    with pytest.raises(Permanent, match="truncated_gzip"):
        ungzip(whole[: len(whole) // 2], 10_000)
    with pytest.raises(Permanent, match="too_large"):
        ungzip(gzip.compress(b"x" * 5000), 1000)


def test_100000_urls_keeps_the_protocol_cap():
    body = sitemap([FeedItem(f"https://a.example/{i}", "") for i in range(100_000)]).encode()
    doc = parse_sitemap(body, "https://a.example/sitemap.xml", 50_000)
    assert len(doc.entries) == 50_000 and doc.entries[-1].url == "https://a.example/49999"
    assert doc.notes == {"too_many_urls": 50_000}


def test_future_and_malformed_dates_and_cut_short(site, client, settings):
    body = sitemap(
        [
            FeedItem(site.url("/future"), "", published=NOW + timedelta(days=30)),
            FeedItem(site.url("/ok"), "", published=NOW),
        ]
    )
    body = body.replace(
        "</urlset>",
        f"<url><loc>{site.url('/bad')}</loc><lastmod>yesterday-ish</lastmod></url></urlset>",
    )
    site.add("/sitemap.xml", body)
    result = poll_feed(
        client, site.url("/sitemap.xml"), settings, rules=SourceRules(since=NOW - timedelta(days=2))
    )
    assert [(e.url, e.published_at) for e in result.entries] == [
        (site.url("/future"), None),
        (site.url("/ok"), NOW),
        (site.url("/bad"), None),
    ]
    assert result.note == "bad_date=1, future_date=1"
    cut = parse_sitemap(body.encode()[: body.index("/bad")], site.url("/s.xml"), 10)
    assert len(cut.entries) == 2 and cut.notes == {"cut_short": 1}


# --- the scheduler: kinds and reasons on the feed rows ----------------------------------------


def test_scheduler_records_kinds_notes_and_reasons(site, settings, conn, database_url):
    site.add(
        "/news-sitemap.xml",
        sitemap(
            [*stories(site, 2), FeedItem("https://elsewhere.example/a", "", published=NOW)],
            news=True,
        ),
    )
    site.add("/feed.json", json_feed([{"id": "1", "url": site.url("/j/1")}]))
    site.add("/broken.xml.gz", gzip.compress(sitemap(stories(site, 5)).encode())[:-30])
    site.add("/rss", rss2(stories(site, 1, prefix="/rss/"), title="R", link=site.url("/")))
    settings.feeds.write_text(
        f'[[feed]]\nurl = "{site.url("/news-sitemap.xml")}"\nsince = "1d"\n'
        f'[[feed]]\nurl = "{site.url("/feed.json")}"\n'
        f'[[feed]]\nurl = "{site.url("/broken.xml.gz")}"\ntype = "sitemap"\n'
        f'[[feed]]\nurl = "{site.url("/rss")}"\n'
    )
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        with ThreadPoolExecutor(2) as executor:
            assert scheduler.poll_due(executor) == 4
    feeds = {row["url"].rsplit("/", 1)[-1]: row for row in db.list_feeds(conn)}
    news = feeds["news-sitemap.xml"]
    assert (news["kind"], news["items_seen"], news["last_poll_note"]) == (
        "news_sitemap",
        2,
        "other_host=1",
    )
    assert news["since_seconds"] == 86400 and news["first_polled_at"] is not None
    assert (feeds["feed.json"]["kind"], feeds["feed.json"]["items_seen"]) == ("json11", 1)
    broken = feeds["broken.xml.gz"]
    assert "truncated_gzip" in broken["last_error"] and broken["consecutive_errors"] == 1
    assert feeds["rss"]["kind"] == "rss20" and feeds["rss"]["items_seen"] == 1
    titles = conn.execute(
        "SELECT entry_title FROM urls WHERE url = %s", (site.url("/news/0"),)
    ).fetchone()
    assert titles["entry_title"] == "Story 0"


def test_cap_settings_apply(site, client, settings):
    site.add("/sitemap.xml", sitemap(stories(site, 5)))
    capped = settings.model_copy(update={"max_sitemap_urls": 3})
    result = poll_feed(client, site.url("/sitemap.xml"), capped)
    assert len(result.entries) == 3 and result.note == "too_many_urls=2"


# --- the feeds file keys ------------------------------------------------------------------


def test_feeds_file_source_keys(tmp_path):
    from newsloom.errors import FeedsFileError
    from newsloom.scheduler.feedsfile import DEFAULT_SINCE, load_feeds

    path = tmp_path / "feeds.toml"
    path.write_text(
        '[[feed]]\nurl = "https://a.example/world/"\ntype = "page"\n'
        'include = "/world/20"\nexclude = "/live/"\n'
        '[[feed]]\nurl = "https://a.example/sitemap.xml"\nsince = "all"\n'
        '[[feed]]\nurl = "https://a.example/news.xml"\n'
    )
    page, archive, news = load_feeds(path)
    assert (page.type, page.include, page.exclude) == ("page", "/world/20", "/live/")
    assert archive.since is None and news.since == DEFAULT_SINCE and news.type is None
    for bad, reason in [
        ('type = "podcast"', "type must be one of feed, sitemap, page"),
        ('include = "(unclosed"', "bad include regular expression"),
        ('since = "soon"', "bad since"),
    ]:
        path.write_text(f'[[feed]]\nurl = "https://a.example/"\n\n{bad}\n')
        with pytest.raises(FeedsFileError, match=reason) as raised:
            load_feeds(path)
        assert raised.value.line == 4


def test_new_rules_drop_the_validators(conn):
    feed = ("https://a.example/sitemap.xml", None, 900, None, True, None, None, None, 172800.0)
    db.sync_feeds(conn, [feed])
    conn.execute("UPDATE feeds SET etag = '\"v1\"', last_modified = 'then'")
    db.sync_feeds(conn, [(*feed[:2], 600, *feed[3:])])  # another interval: validators stay
    assert db.list_feeds(conn)[0]["etag"] == '"v1"'
    db.sync_feeds(conn, [(*feed[:-1], None)])  # since = "all": the next poll reads it whole
    [row] = db.list_feeds(conn)
    assert (row["etag"], row["last_modified"], row["since_seconds"]) == (None, None, None)


def test_sitemap_polls_enqueue_each_url_once_and_keep_the_first_cutoff(
    site, settings, conn, database_url
):
    from test_scheduler import fetch_queue

    archive = stories(site, 3, prefix="/archive/", age=timedelta(days=30))
    site.add("/sitemap.xml", sitemap(stories(site, 2) + archive))  # no validators
    settings.feeds.write_text(f'[[feed]]\nurl = "{site.url("/sitemap.xml")}"\n')
    with db.make_pool(database_url) as pool:
        scheduler = Scheduler(settings, pool, threading.Event())
        scheduler.sync_feeds_file()
        with ThreadPoolExecutor(2) as executor:
            assert scheduler.poll_due(executor) == 1
            assert len(fetch_queue(settings)) == 2
            site.add("/sitemap.xml", sitemap(stories(site, 3) + archive))  # one new story
            conn.execute("UPDATE feeds SET next_check_at = now()")
            conn.commit()
            assert scheduler.poll_due(executor) == 1
    assert len(fetch_queue(settings)) == 3  # the new story only: none twice, no archive
    [feed] = db.list_feeds(conn)
    assert feed["items_seen"] == 3 and feed["last_poll_note"] == "older_than_since=3"


def test_entry_title_stands_in_for_a_page_without_one(ctx, site):
    from site_fixture import seed_article
    from support import run_steps

    _, paragraphs = seed_article()
    site.add(
        "/untitled",
        "<html><body><article>"
        + "".join(f"<p>{p}</p>" for p in paragraphs)
        + "</article></body></html>",
    )
    with ctx.pool.connection() as conn:
        [url_id] = db.record_new_urls(
            conn, None, [(site.url("/untitled"), NOW, None, "Title from the news sitemap")]
        )
    assert run_steps(ctx, url_id)["state"] == "stored"
    with ctx.pool.connection() as conn:
        article = conn.execute("SELECT title, published_at FROM articles").fetchone()
    assert article["title"] == "Title from the news sitemap"


def test_sources_bench_runs(servers):
    """bench/sources.py at a tiny size (`make bench-sources` runs it at size)."""
    bench = Path(__file__).parent.parent / "bench" / "sources.py"
    env = {**os.environ, "DATABASE_URL": servers[0], "REDIS_URL": servers[1]}
    result = subprocess.run(
        [sys.executable, str(bench), "--sitemaps", "4", "--urls", "20", "--memory-urls", "500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unchanged, no ETag" in result.stdout and "count only" in result.stdout
