"""`newsloom serve`'s application on a loopback port, in a thread of the test process, and
the fixture articles the API tests read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import uvicorn
from support import free_port, store_text, wait_until

from newsloom.api import create_app
from newsloom.settings import Settings


@contextmanager
def running_api(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "uvicorn to start", interval=0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


NOW = datetime.now(UTC).replace(microsecond=0)
STORIES = [
    # (url, title, text words, language, days ago, entities)
    (
        "https://example.org/harbour",
        "Harbour strike ends",
        "Dock workers in Rotterdam ended the harbour strike after talks with the port authority.",
        "en",
        1,
        [("Rotterdam", "GPE", 3), ("Port Authority", "ORG", 1)],
    ),
    (
        "https://example.org/budget",
        "Budget vote delayed",
        "The parliament delayed the budget vote; Angela Merkel criticised the delay in Berlin.",
        "en",
        2,
        [("Angela Merkel", "PERSON", 2), ("Berlin", "GPE", 1)],
    ),
    (
        "https://example.org/wetter",
        "Sturm über Berlin",
        "Ein Sturm zog über Berlin und Hamburg, Bäume fielen auf die Straßen der Stadt.",
        "de",
        3,
        [("Berlin", "GPE", 2), ("Hamburg", "GPE", 1)],
    ),
    (
        "https://example.org/merkel",
        "Merkel visits Rotterdam",
        "Angela Merkel visited Rotterdam to open a new terminal at the container harbour.",
        "en",
        5,
        [("Angela Merkel", "PERSON", 4), ("Rotterdam", "GPE", 2)],
    ),
]


def fill(conn) -> dict[str, int]:
    """A feed, the fixture stories (each text padded to a real article's length) and a dead
    letter; returns article ids by URL."""
    feed_id = conn.execute(
        """INSERT INTO feeds (url, name, interval_seconds, last_success_at)
           VALUES ('https://example.org/rss', 'Example News', 900, now()) RETURNING id"""
    ).fetchone()["id"]
    conn.execute("""INSERT INTO feeds (url, name, interval_seconds, consecutive_errors,
                        last_error) VALUES ('https://broken.example/rss', 'Broken', 900, 4,
                        'ConnectError: refused')""")
    ids = {}
    for url, title, text, language, days, entities in STORIES:
        body = " ".join([text] * 4) + f" ({url})"
        _, ids[url] = store_text(
            conn,
            url,
            body,
            title=title,
            feed_id=feed_id,
            language=language,
            when=NOW - timedelta(days=days),
            entities=entities,
        )
    # The harbour story seen again at a second URL (a tracking parameter).
    store_text(
        conn,
        "https://example.org/harbour?utm_source=x",
        " ".join([STORIES[0][2]] * 4) + f" ({STORIES[0][0]})",
        title=STORIES[0][1],
        canonical=STORIES[0][0],
        feed_id=feed_id,
        when=NOW - timedelta(days=1),
    )
    url_id = conn.execute(
        """INSERT INTO urls (url, feed_id, state) VALUES
                             ('https://example.org/dead', %s, 'dead') RETURNING id""",
        (feed_id,),
    ).fetchone()["id"]
    conn.execute(
        """INSERT INTO dead_letters (task, payload, url_id, error_class, error, attempts)
                    VALUES ('fetch', '{}', %s, 'ReadTimeout', 'ReadTimeout: too slow', 5)""",
        (url_id,),
    )
    return ids
