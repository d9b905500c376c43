"""Near-duplicate detection measured on the labelled set (tests/near_duplicates.py), through
the real dedupe-and-store step and its LSH index in Postgres."""

from __future__ import annotations

import threading

from near_duplicates import copies, corpus, labelled_pairs
from support import store_text, wait_until

from newsloom import db
from newsloom.worker.dedupe import NEAR_DUPLICATE_JACCARD, jaccard, shingles


def test_precision_and_recall_on_the_labelled_set(conn):
    stories = corpus()
    made = copies(stories)
    pairs = labelled_pairs(stories, made)
    assert len(pairs) >= 200 and sum(not same for *_, same in pairs) >= 60

    article_of = {}
    for story in stories + made:
        _, article_of[story.key] = store_text(
            conn, f"https://news.example/{story.key}", story.text, title=story.title
        )
    # Every story is distinct: each merge of two is a false positive, labelled or not.
    false_merges = len(stories) - len({article_of[s.key] for s in stories})
    hits = sum(article_of[c.key] == article_of[c.source] for c in made)
    wrong = sum(article_of[c.key] not in (article_of[c.source], _own(conn, c.key)) for c in made)
    precision = hits / (hits + wrong + false_merges)
    recall = hits / len(made)
    similarities = {
        same: [jaccard(shingles(a.text), shingles(b.text)) for a, b, s in pairs if s is same]
        for same in (True, False)
    }
    print(
        f"\nnear-duplicates: {len(pairs)} labelled pairs ({len(made)} copies, "
        f"{len(pairs) - len(made)} distinct-but-similar), precision {precision:.3f}, "
        f"recall {recall:.3f}; Jaccard of copies >= {min(similarities[True]):.2f}, "
        f"of distinct pairs <= {max(similarities[False]):.2f} (threshold {NEAR_DUPLICATE_JACCARD})"
    )
    assert precision >= 0.99 and recall >= 0.95
    # The copies were attached, not stored: one article per story.
    assert conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == len(stories)


def _own(conn, key: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM articles WHERE url = %s", (f"https://news.example/{key}",)
    ).fetchone()
    return row and row["id"]


def test_copies_stored_at_once_by_two_workers_make_one_article(conn, database_url):
    story = corpus()[0]
    copy = next(c for c in copies([story]) if c.edit == "mixed")
    with db.connect(database_url) as first:
        with first.transaction():
            first_result = store_text(first, "https://a.example/story", story.text)
            # The other worker's store waits on the first one's locks...
            second_result = {}
            other = threading.Thread(
                target=lambda: second_result.update(result=_store_copy(database_url, copy.text))
            )
            other.start()
            wait_until(lambda: _waiting_on_advisory_lock(conn), 10, "the second store to wait")
        # ...and, once it commits, sees its article.
        other.join(timeout=30)
    assert second_result["result"] == ("duplicate", first_result[1])


def _store_copy(database_url: str, text: str):
    with db.connect(database_url) as second:
        return store_text(second, "https://b.example/copy", text)


def _waiting_on_advisory_lock(conn) -> bool:
    return (
        conn.execute(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()["n"]
        > 0
    )
