"""newsloom feeds add / check / list against a loopback site."""

from __future__ import annotations

import json
import subprocess
import sys

from site_fixture import FeedItem, atom, rss2

from newsloom.scheduler.feedsfile import load_feeds


def newsloom(env, *args):
    return subprocess.run([sys.executable, "-m", "newsloom", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def home_page(link: str = "") -> str:
    return f"<html><head><title>Home</title>{link}</head><body><h1>News</h1></body></html>"


def test_add_finds_the_feed_of_a_home_page(site, settings, app_env):
    site.add("/", home_page('<link rel="alternate" type="application/atom+xml" title="x" '
                            'href="/atom.xml">'))
    site.add("/atom.xml", atom([FeedItem(site.url("/1"), "one")], title="The Loom", link=site.url("/")),
             content_type="application/atom+xml")
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
    site.add("/rss.xml", rss2([FeedItem(site.url("/1"), "one")], title="T", link=site.url("/")),
             content_type="application/rss+xml")
    result = newsloom(app_env, "feeds", "add", site.url("/"), "--name", "Mine")
    assert result.returncode == 0, result.stderr
    [feed] = load_feeds(settings.feeds)
    assert (feed.url, feed.name) == (site.url("/rss.xml"), "Mine")


def test_add_without_a_feed_says_so(site, settings, app_env):
    site.add("/", home_page())
    result = newsloom(app_env, "feeds", "add", site.url("/"))
    assert result.returncode == 2 and "no RSS or Atom feed found" in result.stderr
    assert not settings.feeds.exists()


def test_check_probes_every_feed(site, settings, app_env, tmp_path):
    site.add("/good", rss2([FeedItem(site.url("/1"), "one")], title="T", link=site.url("/")),
             content_type="application/rss+xml")
    site.add("/html", home_page(), content_type="text/html")
    path = tmp_path / "check.toml"
    path.write_text("".join(f'[[feed]]\nurl = "{site.url(p)}"\n\n' for p in ("/good", "/html", "/gone")))
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


def test_list_shows_health(site, settings, app_env, conn):
    from newsloom import db

    db.sync_feeds(conn, [(site.url("/feed"), "Loom", 900, None, True)])
    conn.execute("UPDATE feeds SET consecutive_errors = 2, last_error = 'Transient: HTTP 503'")
    [feed] = json.loads(newsloom(app_env, "feeds", "list", "--json").stdout)
    assert feed["consecutive_errors"] == 2 and feed["last_error"] == "Transient: HTTP 503"
    table = newsloom(app_env, "feeds", "list")
    assert table.returncode == 0 and "Loom" in table.stdout
