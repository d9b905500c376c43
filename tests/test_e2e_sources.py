"""End to end over sources beyond RSS: `newsloom up` follows a site's sitemap index, its
news sitemap and a section page, and stores each story once."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from site_fixture import serve_sources_site
from support import wait_until
from test_e2e import base_env, finished, start_up, stop


def test_up_reads_sitemaps_and_a_section_page(settings, site, tmp_path):
    served = serve_sources_site(site, stories=6)
    env = base_env(tmp_path, site)
    (tmp_path / "feeds.toml").write_text(
        f'[[feed]]\nurl = "{site.url("/sitemap_index.xml")}"\nname = "Index"\n\n'
        f'[[feed]]\nurl = "{site.url("/news-sitemap.xml")}"\nname = "News"\n\n'
        f'[[feed]]\nurl = "{site.url("/world/")}"\nname = "World"\ntype = "page"\n'
        'include = "/world/20"\n'
    )
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "NEWSLOOM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        }
    )
    log_path = tmp_path / "up.log"
    process = start_up(env, log_path)
    try:
        wait_until(
            finished(settings.database_url, len(served)), 180, "every story to reach an outcome"
        )
    finally:
        stop(process, log_path)
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        urls = conn.execute("SELECT url, state FROM urls ORDER BY url").fetchall()
        articles = conn.execute("SELECT url, title FROM articles").fetchall()
        feeds = {f["name"]: f for f in conn.execute("SELECT * FROM feeds")}
    log = log_path.read_text()[-3000:]
    assert sorted(u["url"] for u in urls) == sorted(served), log
    assert {u["state"] for u in urls} == {"stored"}, log
    assert sorted(a["url"] for a in articles) == sorted(served)  # each story once
    assert {a["url"]: a["title"] for a in articles} == served
    assert {name: f["kind"] for name, f in feeds.items()} == {
        "Index": "sitemap_index",
        "News": "news_sitemap",
        "World": "page",
    }
    assert all(f["last_error"] is None for f in feeds.values())
    assert site.hits("/sitemaps/part-2.xml.gz") >= 1
