"""What keeps costs flat as the collection grows: windowed search, feeds list's limit."""

from __future__ import annotations

import subprocess
import sys

from support import store_text

from newsloom import db


def test_search_ranks_the_most_recent_window_with_enough_matches(conn):
    for n in range(3):
        store_text(
            conn,
            f"https://a.example/new{n}",
            f"Harbour news number {n} from the quay "
            f"{'and more words ' * n}about shipping volumes on the river this week.",
        )
    store_text(
        conn,
        "https://a.example/old",
        "Harbour harbour harbour: the old quay story, "
        "ranked best of all but two years old, about shipping on the river.",
    )
    conn.execute(
        "UPDATE articles SET created_at = now() - interval '2 years'"
        " WHERE url = 'https://a.example/old'"
    )
    recent = db.search_articles(conn, "harbour", limit=3)
    assert {r["url"] for r in recent} == {f"https://a.example/new{n}" for n in range(3)}
    # Too few in every recent window: all of time, best first.
    everything = db.search_articles(conn, "harbour", limit=10)
    assert len(everything) == 4 and everything[0]["url"] == "https://a.example/old"


def test_feeds_list_shows_the_first_feeds(conn, app_env):
    db.sync_feeds(
        conn, [(f"https://f{n}.example/rss", f"Feed {n}", 900, None, True) for n in range(5)]
    )
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", "feeds", "list", "--limit", "3"],
        env={**app_env, "COLUMNS": "250"},  # wide enough that no name is folded
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "3 feed(s), more not shown (--limit 3)" in result.stdout
    assert "Feed 2" in result.stdout and "Feed 3" not in result.stdout
    every = subprocess.run(
        [sys.executable, "-m", "newsloom", "feeds", "list", "--limit", "0"],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "5 feed(s)" in every.stdout and "more not shown" not in every.stdout
