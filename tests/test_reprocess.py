"""newsloom reprocess: re-extraction from the kept pages, without fetching again."""

from __future__ import annotations

from functools import partial

from site_fixture import article_html, seed_article
from support import run_newsloom, run_url

from newsloom.worker.extract import EXTRACTOR

# Re-extraction and tagging of every article take a while on a loaded machine.
newsloom = partial(run_newsloom, timeout=300)


def test_reprocess_restores_from_the_kept_page(ctx, site, conn, app_env):
    title, paragraphs = seed_article()
    site.add("/a", article_html(title, paragraphs))
    row = run_url(ctx, site.url("/a"))
    before = conn.execute("SELECT text, content_hash FROM articles").fetchone()
    entities = conn.execute("SELECT count(*) AS n FROM article_entities").fetchone()["n"]
    # As if an older extractor had produced something worse.
    conn.execute(
        """UPDATE articles SET extractor = 'trafilatura 0.1', text = 'old', content_hash = 'old'"""
    )
    conn.execute("DELETE FROM article_entities")
    hits = site.hits("/a")

    result = newsloom(app_env, "reprocess")
    assert result.returncode == 0, result.stderr
    assert "reprocessed 1 of 1" in result.stdout and "reprocessing: 1/1" in result.stderr
    after = conn.execute(
        "SELECT text, content_hash, extractor FROM articles WHERE id = %s", (row["article_id"],)
    ).fetchone()
    assert (after["text"], after["content_hash"]) == (before["text"], before["content_hash"])
    assert after["extractor"] == EXTRACTOR
    assert conn.execute("SELECT count(*) AS n FROM article_entities").fetchone()["n"] == entities
    assert site.hits("/a") == hits  # nothing fetched again

    assert "reprocessed 0 of 0" in newsloom(app_env, "reprocess").stdout  # all current
    assert "reprocessed 1 of 1" in newsloom(app_env, "reprocess", "--all").stdout
