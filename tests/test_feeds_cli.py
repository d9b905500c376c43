"""newsloom feeds add / check / list against a loopback site."""

from __future__ import annotations

import json

from site_fixture import FeedItem, atom, rss2
from support import run_newsloom as newsloom

from newsloom.scheduler.feedsfile import load_feeds


def home_page(link: str = "") -> str:
    return f"<html><head><title>Home</title>{link}</head><body><h1>News</h1></body></html>"


def test_add_finds_the_feed_of_a_home_page(site, settings, app_env):
    site.add(
        "/",
        home_page('<link rel="alternate" type="application/atom+xml" title="x" href="/atom.xml">'),
    )
    site.add(
        "/atom.xml",
        atom([FeedItem(site.url("/1"), "one")], title="The Loom", link=site.url("/")),
        content_type="application/atom+xml",
    )
    settings.feeds.write_text('[defaults]\ninterval = "10m"\n')
    result = newsloom(app_env, "feeds", "add", site.url("/"))
    assert result.returncode == 0, result.stderr
    assert load_feeds(settings.feeds)[0].url == site.url("/atom.xml")
    assert load_feeds(settings.feeds)[0].name == "The Loom"
    again = newsloom(app_env, "feeds", "add", site.url("/atom.xml"))
    assert again.returncode == 2 and "already listed" in again.stderr
    assert len(load_feeds(settings.feeds)) == 1


def test_add_tries_common_paths(site, settings, app_env):
    site.add("/", home_page())
    site.add(
        "/rss.xml",
        rss2([FeedItem(site.url("/1"), "one")], title="T", link=site.url("/")),
        content_type="application/rss+xml",
    )
    result = newsloom(app_env, "feeds", "add", site.url("/"), "--name", "Mine")
    assert result.returncode == 0, result.stderr
    [feed] = load_feeds(settings.feeds)
    assert (feed.url, feed.name) == (site.url("/rss.xml"), "Mine")


def test_add_without_a_feed_says_so(site, settings, app_env):
    site.add("/", home_page())
    result = newsloom(app_env, "feeds", "add", site.url("/"))
    assert result.returncode == 2 and "no RSS, Atom or JSON feed found" in result.stderr
    assert not settings.feeds.exists()


def test_check_probes_every_feed(site, settings, app_env, tmp_path):
    site.add(
        "/good",
        rss2([FeedItem(site.url("/1"), "one")], title="T", link=site.url("/")),
        content_type="application/rss+xml",
    )
    site.add("/html", home_page(), content_type="text/html")
    path = tmp_path / "check.toml"
    path.write_text(
        "".join(f'[[feed]]\nurl = "{site.url(p)}"\n\n' for p in ("/good", "/html", "/gone"))
    )
    result = newsloom(app_env, "feeds", "check", str(path), "--json")
    assert result.returncode == 1
    report = {r["url"]: r for r in json.loads(result.stdout)}
    assert report[site.url("/good")]["ok"] and report[site.url("/good")]["entries"] == 1
    assert "not_a_feed" in report[site.url("/html")]["error"]
    assert "http_404" in report[site.url("/gone")]["error"]
    table = newsloom(app_env, "feeds", "check", str(path))
    assert "1 failing" not in table.stdout and "2 failing" in table.stdout
    assert "probing: 3/3" in table.stderr  # progress, as plain lines outside a terminal


def test_check_reports_a_bad_file(app_env, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[feed]]\nurl = "https://a.example/rss"\ncolour = 1\n')
    result = newsloom(app_env, "feeds", "check", str(path))
    assert result.returncode == 2 and f"{path}:3: unknown key 'colour'" in result.stderr


def test_check_reports_a_webhook_filter_naming_an_unknown_feed(app_env, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[feed]]\nurl = "https://a.example/rss"\n\n[[webhook]]\n'
        'url = "https://hooks.example/"\nsecret = "x"\nfeeds = ["Nope"]\n'
    )
    result = newsloom(app_env, "feeds", "check", str(path))
    assert result.returncode == 2 and f"{path}:7: webhook filter names feed 'Nope'" in result.stderr


def test_list_shows_health(site, settings, app_env, conn):
    from newsloom import db

    db.sync_feeds(conn, [(site.url("/feed"), "Loom", 900, None, True)])
    conn.execute("UPDATE feeds SET consecutive_errors = 2, last_error = 'Transient: HTTP 503'")
    [feed] = json.loads(newsloom(app_env, "feeds", "list", "--json").stdout)
    assert feed["consecutive_errors"] == 2 and feed["last_error"] == "Transient: HTTP 503"
    table = newsloom(app_env, "feeds", "list")
    assert table.returncode == 0 and "Loom" in table.stdout


def test_add_proposes_the_sites_sitemaps(site, settings, app_env):
    from site_fixture import sitemap

    site.add("/", home_page())
    site.add(
        "/feed.json",
        json.dumps(
            {"version": "https://jsonfeed.org/version/1.1", "title": "Loom JSON", "items": []}
        ),
    )
    site.add(
        "/robots.txt",
        f"User-agent: *\nDisallow:\nSitemap: {site.url('/sitemap.xml')}\n"
        "sitemap: /sitemap-index.xml\n",
        content_type="text/plain",
    )
    site.add("/sitemap_news.xml", sitemap([FeedItem(site.url("/1"), "one")], news=True))
    site.add("/news-sitemap.xml", home_page())  # an HTML page there is not proposed
    result = newsloom(app_env, "feeds", "add", site.url("/"))
    assert result.returncode == 0, result.stderr
    assert load_feeds(settings.feeds)[0].url == site.url("/feed.json")
    assert load_feeds(settings.feeds)[0].name == "Loom JSON"
    assert result.stdout.split("sitemaps")[1].split()[-3:] == [
        site.url("/sitemap.xml"),
        site.url("/sitemap-index.xml"),
        site.url("/sitemap_news.xml"),
    ]
    # A sitemap's own URL is added as it is.
    added = newsloom(app_env, "feeds", "add", site.url("/sitemap_news.xml"))
    assert added.returncode == 0, added.stderr
    assert load_feeds(settings.feeds)[1].url == site.url("/sitemap_news.xml")


def test_check_and_list_show_kinds(site, settings, app_env, tmp_path, conn):
    from site_fixture import sitemap

    from newsloom import db

    site.add("/rss", rss2([FeedItem(site.url("/1"), "one")], title="T", link=site.url("/")))
    site.add("/sitemap.xml", sitemap([FeedItem(site.url("/2"), "two")], news=True))
    path = tmp_path / "check.toml"
    path.write_text(
        f'[[feed]]\nurl = "{site.url("/rss")}"\n\n'
        f'[[feed]]\nurl = "{site.url("/sitemap.xml")}"\nsince = "all"\n'
    )
    result = newsloom(app_env, "feeds", "check", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert [(r["kind"], r["entries"]) for r in json.loads(result.stdout)] == [
        ("rss20", 1),
        ("news_sitemap", 1),
    ]
    db.sync_feeds(conn, [(site.url("/sitemap.xml"), "Map", 900, None, True)])
    conn.execute("UPDATE feeds SET kind = 'news_sitemap', last_poll_note = 'other_host=2'")
    [feed] = json.loads(newsloom(app_env, "feeds", "list", "--json").stdout)
    assert (feed["kind"], feed["last_poll_note"]) == ("news_sitemap", "other_host=2")
    wide = newsloom({**app_env, "COLUMNS": "250"}, "feeds", "list")
    assert "news_sitemap" in wide.stdout and "other_host=2" in wide.stdout
