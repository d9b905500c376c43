"""What the pipeline keeps of a page: metadata, updates of a changed page, near-copies on
other sites, and articles in languages without an entity model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from site_fixture import article_html, seed_article
from support import run_steps, run_url

from newsloom import db
from newsloom.worker.pipeline import Context

GERMAN = [
    "Der Berliner Senat hat am Dienstag einen neuen Plan für den Ausbau der Straßenbahn "
    "vorgestellt. Bis zum Jahr 2030 sollen drei neue Linien durch die östlichen Bezirke führen.",
    "Die Verkehrssenatorin sagte, die Stadt müsse schneller werden, wenn sie ihre Klimaziele "
    "erreichen wolle. Kritiker bemängeln, dass die Finanzierung noch nicht gesichert sei.",
    "Die Opposition im Abgeordnetenhaus forderte eine genaue Aufstellung der Kosten, bevor "
    "die ersten Bauarbeiten im kommenden Frühjahr beginnen können.",
]


def article(conn, article_id: int) -> dict:
    return conn.execute("SELECT * FROM articles WHERE id = %s", (article_id,)).fetchone()


def test_metadata_of_the_page(ctx, site, conn):
    title, paragraphs = seed_article()
    site.add(
        "/a",
        article_html(
            title,
            paragraphs,
            author="Jane Doe",
            published="2017-10-30T08:15:00+03:00",
            image="/img/drills.jpg",
            tags=("Iraq", "Military", "iraq"),
        ),
    )
    row = run_url(ctx, site.url("/a"))
    kept = article(conn, row["article_id"])
    assert (kept["title"], kept["author"], kept["site_name"], kept["language"]) == (
        title,
        "Jane Doe",
        "The Daily Loom",
        "en",
    )
    assert kept["published_at"] == datetime(2017, 10, 30, 5, 15, tzinfo=UTC)
    assert kept["description"].startswith(paragraphs[0][:60])
    assert kept["image_url"].endswith("/img/drills.jpg")
    assert kept["tags"] == ["Iraq", "Military"]
    assert kept["entities_skipped"] is None and kept["updated_at"] is None


def test_a_changed_page_updates_its_article(ctx, site, conn):
    title, paragraphs = seed_article()
    site.add("/a", article_html(title, paragraphs))
    first = run_url(ctx, site.url("/a"))
    before = article(conn, first["article_id"])
    updated = datetime(2030, 1, 1, tzinfo=UTC)
    with ctx.pool.connection() as c:
        # Refreshed only when the feed shows a newer update, and not too soon after a fetch.
        assert db.record_new_urls(c, None, [(site.url("/a"), None, updated)], 3600) == []
        assert db.record_new_urls(c, None, [(site.url("/a"), None, updated)], 0) == [first["id"]]
        assert db.record_new_urls(c, None, [(site.url("/a"), None, updated)], 0) == []

    update = "Update: the ministry said on Tuesday that the drills would be extended by a week."
    site.add("/a", article_html(title, [*paragraphs, update]))
    again = run_steps(ctx, first["id"])
    after = article(conn, first["article_id"])
    assert (again["state"], again["article_id"]) == ("stored", first["article_id"])
    assert after["text"].endswith("extended by a week.") and after["text"] != before["text"]
    assert after["updated_at"] is not None and after["fetched_at"] > before["fetched_at"]
    assert after["content_hash"] != before["content_hash"]
    assert conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == 1

    # Fetched again unchanged: nothing to update.
    with ctx.pool.connection() as c:
        db.record_new_urls(c, None, [(site.url("/a"), None, updated + timedelta(days=1))], 0)
    run_steps(ctx, first["id"])
    assert article(conn, first["article_id"])["updated_at"] == after["updated_at"]


def test_a_syndicated_copy_joins_the_original(ctx, site, conn):
    title, paragraphs = seed_article()
    site.add("/original", article_html(title, paragraphs))
    copy = [p.replace("Iraq’s", "Iraq's") for p in paragraphs[:-1]] + [
        "This article first appeared in The Daily Loom and is republished with permission."
    ]
    site.add(
        "/wire/copy",
        article_html(
            f"{title} - Wire",
            copy,
            site_name="Wire Daily",
            related=("Markets close higher", "Weather warning"),
        ),
    )
    other_title, other = (
        "Rail strike called off",
        [
            "Rail workers called off a strike planned for Monday "
            "after the union accepted a new pay "
            "offer from the operators, ending a dispute that had lasted since the spring.",
            "The union said members would vote on the deal next month. The operators said services "
            "would run normally all week and thanked passengers for their patience.",
        ],
    )
    site.add("/rail", article_html(other_title, other))  # same site template, another story

    original = run_url(ctx, site.url("/original"))
    syndicated = run_url(ctx, site.url("/wire/copy"))
    distinct = run_url(ctx, site.url("/rail"))
    assert (syndicated["state"], syndicated["article_id"]) == ("duplicate", original["article_id"])
    assert distinct["state"] == "stored" and distinct["article_id"] != original["article_id"]
    urls = conn.execute(
        "SELECT url FROM article_urls WHERE article_id = %s ORDER BY id", (original["article_id"],)
    ).fetchall()
    assert [u["url"] for u in urls] == [site.url("/original"), site.url("/wire/copy")]


def test_language_without_a_model_is_stored_without_entities(ctx, site, conn, settings):
    site.add("/de", article_html("Neue Straßenbahnlinien für Berlin", GERMAN, lang="de"))
    kept = article(conn, run_url(ctx, site.url("/de"))["article_id"])
    assert kept["language"] == "de"
    assert kept["entities_skipped"] == "no spaCy model for language 'de'"
    assert conn.execute("SELECT count(*) AS n FROM article_entities").fetchone()["n"] == 0

    # With a model set for German (the English one stands in), it is tagged.
    german = Context(settings.model_copy(update={"spacy_models": {"de": settings.spacy_model}}))
    site.add(
        "/de2",
        article_html(
            "Hamburger Hafen wächst",
            [
                "Der Hamburger Hafen hat im vergangenen "
                "Jahr deutlich mehr Container umgeschlagen als "
                "erwartet. Die Hafenbehörde führt das vor allem "
                "auf neue Verbindungen nach Asien zurück.",
                "Der Bürgermeister von Hamburg lobte "
                "die Beschäftigten und kündigte an, die Elbe weiter "
                "auszubaggern, damit auch die größten Schiffe den Hafen anlaufen können.",
            ],
            lang="de",
        ),
    )
    tagged = article(conn, run_url(german, site.url("/de2"))["article_id"])
    assert tagged["entities_skipped"] is None
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM article_entities WHERE article_id = %s", (tagged["id"],)
        ).fetchone()["n"]
        > 0
    )
