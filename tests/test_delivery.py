"""At least once, and idempotent: the same message delivered several times through the
real broker and workers leaves the rows of one clean run."""

from __future__ import annotations

from site_fixture import article_html, seed_article
from support import wait_until

from newsloom import broker, db, queue
from newsloom.worker.tag import load_model, tag


def test_duplicate_messages_leave_the_rows_of_one_run(site, settings, conn, workers):
    title, paragraphs = seed_article()
    site.add("/story", article_html(title, paragraphs))
    [url_id] = db.record_new_urls(conn, None, [(site.url("/story"), None, None)])
    celery = queue.make_app(settings)
    try:
        for _ in range(3):
            queue.enqueue_fetch([url_id], celery)
        queue.enqueue_process(url_id, celery)  # early: nothing to process yet, a no-op

        client = broker.redis_client(settings.redis_url)

        def drained():
            return (
                db.get_url(conn, url_id)["state"] == "stored"
                and queue.queue_depths(celery) == {"fetch": 0, "process": 0, "deliver": 0}
                and client.hlen(f"{settings.redis_key_prefix}unacked") == 0
            )

        wait_until(drained, 90, "the URL stored and every message acknowledged")
    finally:
        celery.close()
    rows = conn.execute("""SELECT (SELECT count(*) FROM articles) AS articles,
                                  (SELECT count(*) FROM article_urls) AS article_urls,
                                  (SELECT count(*) FROM raw_pages) AS raw_pages""").fetchone()
    assert rows == {"articles": 1, "article_urls": 1, "raw_pages": 1}
    [article] = conn.execute("SELECT id, title, text FROM articles").fetchall()
    stored = {
        (r["name"], r["label"]): r["mentions"]
        for r in conn.execute(
            """SELECT e.name, e.label, ae.mentions FROM article_entities ae
           JOIN entities e ON e.id = ae.entity_id"""
        )
    }
    [expected] = tag(
        load_model(settings.spacy_model),
        [f"{article['title']}\n\n{article['text']}"],
        settings.entity_labels,
    )
    assert stored == {(name, label): mentions for name, label, mentions in expected}
