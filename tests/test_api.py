"""The read API against real Postgres: filters, pages, entities, feeds, dead letters,
events, health, metrics, the OpenAPI document; keys; and bad input answered 4xx."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from api_server import fill, running_api
from support import scratch_database

from newsloom import db
from newsloom.settings import load_settings

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def world(servers):
    """A database of this module's own with the fixture articles, and its settings: the
    tests that only read share it (and one server each) instead of filling it again."""
    with scratch_database(servers[0], label="api") as url:
        with db.connect(url) as conn:
            ids = fill(conn)
        yield load_settings(database_url=url, redis_url=servers[1]), ids


@pytest.fixture(scope="module")
def api_url(world):
    with running_api(world[0]) as base:
        yield base


@pytest.fixture(scope="module")
def keyed_url(world):
    with running_api(world[0].model_copy(update={"api_keys": ("other", KEY)})) as base:
        yield base


@pytest.fixture
def filled(world):
    return world[1]


@pytest.fixture
def api(api_url):
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
def keyed_api(keyed_url):
    with httpx.Client(base_url=keyed_url, timeout=30) as client:
        yield client


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_articles_newest_first_with_feed_and_entities(api, filled):
    body = ok(api.get("/api/v1/articles"))
    titles = [a["title"] for a in body["articles"]]
    assert titles == [
        "Harbour strike ends",
        "Budget vote delayed",
        "Sturm über Berlin",
        "Merkel visits Rotterdam",
    ]
    first = body["articles"][0]
    assert first["feed_name"] == "Example News" and "text" not in first
    assert [e["name"] for e in first["entities"]] == ["Rotterdam", "Port Authority"]
    assert body["next"] is None


def test_article_filters(api):
    def titles(**params) -> list[str]:
        return [a["title"] for a in ok(api.get("/api/v1/articles", params=params))["articles"]]

    assert titles(q="harbour") == ["Harbour strike ends", "Merkel visits Rotterdam"]
    assert titles(q='"budget vote"') == ["Budget vote delayed"]
    assert titles(language="de") == ["Sturm über Berlin"]
    assert titles(entity="Angela Merkel") == ["Budget vote delayed", "Merkel visits Rotterdam"]
    assert titles(feed="Example News", q="Sturm") == ["Sturm über Berlin"]
    assert titles(feed="Nope") == []
    since = ok(api.get("/api/v1/articles"))["articles"][2]["published_at"]
    assert titles(since=since) == [
        "Harbour strike ends",
        "Budget vote delayed",
        "Sturm über Berlin",
    ]
    assert titles(until=since) == ["Merkel visits Rotterdam"]


def test_keyset_pages_follow_next_and_fields(api):
    seen, path = [], "/api/v1/articles?limit=1&fields=id,title,text&language=en"
    while path:
        body = ok(api.get(path))
        assert [set(a) for a in body["articles"]] == [{"id", "title", "text"}]
        seen.append(body["articles"][0]["title"])
        path = body["next"]
    assert seen == ["Harbour strike ends", "Budget vote delayed", "Merkel visits Rotterdam"]


def test_article_with_entities_and_every_url(api, filled):
    body = ok(api.get(f"/api/v1/articles/{filled['https://example.org/harbour']}"))
    assert body["title"] == "Harbour strike ends" and "Rotterdam" in body["text"]
    assert [u["url"] for u in body["urls"]] == [
        "https://example.org/harbour",
        "https://example.org/harbour?utm_source=x",
    ]
    assert {(e["name"], e["mentions"]) for e in body["entities"]} == {
        ("Rotterdam", 3),
        ("Port Authority", 1),
    }


def test_entities_top_and_search_and_timeline(api):
    body = ok(api.get("/api/v1/entities"))
    assert [(e["name"], e["mentions"]) for e in body["entities"][:2]] == [
        ("Angela Merkel", 6),
        ("Rotterdam", 5),
    ]
    found = ok(api.get("/api/v1/entities", params={"q": "BERL"}))["entities"]
    assert [(e["name"], e["articles"]) for e in found] == [("Berlin", 2)]
    merkel = body["entities"][0]["id"]
    timeline = ok(api.get(f"/api/v1/entities/{merkel}/timeline"))
    assert timeline["entity"]["name"] == "Angela Merkel"
    assert len(timeline["days"]) == 90 and sum(d["mentions"] for d in timeline["days"]) == 6
    assert sorted(d["mentions"] for d in timeline["days"] if d["mentions"]) == [2, 4]
    week = ok(
        api.get(
            f"/api/v1/entities/{merkel}/timeline", params={"since": timeline["days"][-3]["day"]}
        )
    )
    assert [d["mentions"] for d in week["days"]] == [2, 0, 0]


def test_feeds_and_dead_letters(api):
    feeds = {f["name"]: f for f in ok(api.get("/api/v1/feeds"))["feeds"]}
    assert feeds["Example News"]["health"] == "ok"
    assert feeds["Broken"]["health"] == "failing"
    assert feeds["Broken"]["last_error"] == "ConnectError: refused"
    letters = ok(api.get("/api/v1/dead-letters"))["dead_letters"]
    assert [(d["error_class"], d["url"]) for d in letters] == [
        ("ReadTimeout", "https://example.org/dead")
    ]
    assert ok(api.get("/api/v1/dead-letters", params={"error": "nothing"}))["dead_letters"] == []


@pytest.fixture
def own_api(settings, conn):
    """A server over the test's own (emptied) database, for tests that write."""
    ids = fill(conn)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client, ids


def test_events_after_an_id_and_long_poll(own_api, conn):
    api, filled = own_api
    conn.execute("TRUNCATE events RESTART IDENTITY CASCADE")
    harbour = filled["https://example.org/harbour"]
    conn.execute(
        "INSERT INTO events (kind, article_id) VALUES ('stored', %s), ('duplicate', %s)",
        (harbour, harbour),
    )
    body = ok(api.get("/api/v1/events", params={"after": 0}))
    assert [(e["id"], e["kind"], e["title"]) for e in body["events"]] == [
        (1, "stored", "Harbour strike ends"),
        (2, "duplicate", "Harbour strike ends"),
    ]
    assert body["last_id"] == 2 and body["next"] == "/api/v1/events?after=2"
    assert ok(api.get("/api/v1/events", params={"after": 2}))["events"] == []
    # Nothing new: the request holds for `wait` seconds, then answers empty.
    import time

    started = time.monotonic()
    assert ok(api.get("/api/v1/events", params={"after": 2, "wait": 1}))["events"] == []
    assert time.monotonic() - started >= 0.9
    # An event arriving while the request waits is answered at once.
    import threading

    timer = threading.Timer(
        0.5,
        lambda: conn.execute(
            "INSERT INTO events (kind, article_id) VALUES ('updated', %s)", (harbour,)
        ),
    )
    timer.start()
    started = time.monotonic()
    body = ok(api.get("/api/v1/events", params={"after": 2, "wait": 20}))
    timer.join()
    assert [e["kind"] for e in body["events"]] == ["updated"]
    assert time.monotonic() - started < 10


def test_health_metrics_openapi_and_docs(api):
    assert ok(api.get("/healthz")) == {"status": "ok"}
    api.get("/api/v1/articles")
    metrics = api.get("/metrics").text
    assert 'newsloom_api_requests_total{route="/api/v1/articles",status="200"}' in metrics
    document = ok(api.get("/api/v1/openapi.json"))
    assert document["openapi"].startswith("3.")
    names = [p["name"] for p in document["paths"]["/api/v1/articles"]["get"]["parameters"]]
    assert {
        "q",
        "feed",
        "language",
        "entity",
        "since",
        "until",
        "cursor",
        "limit",
        "fields",
    } <= set(names)
    assert "/api/v1/entities/{id}/timeline" in document["paths"]
    docs = api.get("/api/v1/docs")
    assert docs.status_code == 200 and "GET /api/v1/events" in docs.text
    # Each operation's summary and parameters (`item.get` is the GET operation, not dict.get).
    assert "Articles, newest first, filtered" in docs.text
    assert "<td><code>fields</code></td>" in docs.text


@pytest.mark.parametrize(
    "path, params, status, words",
    [
        ("/api/v1/articles", {"colour": "red"}, 400, "unknown parameter(s): colour"),
        ("/api/v1/articles", {"since": "yesterday"}, 400, "since must be an ISO 8601 date"),
        ("/api/v1/articles", {"until": "2024-13-45"}, 400, "until must be an ISO 8601"),
        (
            "/api/v1/articles",
            {"limit": str(10**9)},
            400,
            "limit must be a whole number from 1 to 200",
        ),
        ("/api/v1/articles", {"limit": "-1"}, 400, "limit must be"),
        ("/api/v1/articles", {"limit": "9" * 400}, 400, "limit must be"),
        ("/api/v1/articles", {"fields": "id,password"}, 400, "unknown field(s) password"),
        ("/api/v1/articles", {"cursor": "garbage"}, 400, "cursor is not valid"),
        ("/api/v1/articles", {"q": "x" * 1000}, 400, "q must be at most 200 characters"),
        ("/api/v1/articles", {"q": "a\x00b"}, 400, "q must be"),
        (
            "/api/v1/articles",
            {"since": "2024-05-02", "until": "2024-05-01"},
            400,
            "since must be before until",
        ),
        ("/api/v1/articles/999999", {}, 404, "no article 999999"),
        ("/api/v1/articles/99999999999999999999999", {}, 404, "no article"),
        ("/api/v1/articles/abc", {}, 404, "nothing at /api/v1/articles/abc"),
        ("/api/v1/entities/424242/timeline", {}, 404, "no entity 424242"),
        ("/api/v1/entities", {"since": "2000-01-01"}, 400, "may span at most 366 days"),
        (
            "/api/v1/entities/1/timeline",
            {"since": "1900-01-01", "until": "2100-01-01"},
            400,
            "may span at most",
        ),
        ("/api/v1/events", {"wait": "3600"}, 400, "wait must be a whole number from 0 to 25"),
        ("/api/v1/feeds", {"limit": "5"}, 400, "unknown parameter(s): limit"),
        ("/api/v1/nope", {}, 404, "nothing at"),
    ],
)
def test_bad_input_is_a_clear_4xx(api, path, params, status, words):
    response = api.get(path, params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and words in body["message"], body


def test_repeated_parameter_and_write_methods_are_refused(api):
    response = api.get("/api/v1/articles?language=en&language=de")
    assert response.status_code == 400 and "more than once" in response.json()["message"]
    response = api.post("/api/v1/articles", json={})
    assert response.status_code == 405 and "only reads" in response.json()["message"]


def test_cursor_of_another_query_or_altered_is_refused(api):
    first = ok(api.get("/api/v1/articles", params={"limit": 1, "language": "en"}))
    cursor = first["next"].split("cursor=")[1]
    other = api.get(f"/api/v1/articles?limit=1&language=de&cursor={cursor}")
    assert other.status_code == 400 and "other filters" in other.json()["message"]
    altered = api.get(f"/api/v1/articles?limit=1&language=en&cursor={cursor[:-2]}xx")
    assert altered.status_code == 400 and "not valid" in altered.json()["message"]


def test_expired_cursor(api, monkeypatch):
    from newsloom.api import cursors

    first = ok(api.get("/api/v1/articles", params={"limit": 1}))
    monkeypatch.setattr(cursors, "MAX_AGE_SECONDS", -1)
    response = api.get(first["next"])
    assert response.status_code == 400 and "cursor expired" in response.json()["message"]


@pytest.mark.parametrize(
    "q",
    ["'; DROP TABLE articles; --", "1 OR 1=1", "harbour' UNION SELECT", "!!!&|:*<->", "\\", "%_%"],
)
def test_sql_looking_queries_are_only_words(api, world, q):
    response = api.get("/api/v1/articles", params={"q": q})
    assert response.status_code == 200, response.text
    with db.connect(world[0].database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == 4
    entities = api.get("/api/v1/entities", params={"q": q})
    assert entities.status_code == 200 and entities.json()["entities"] == []


def test_slow_query_is_stopped_with_503(world):
    slow = world[0].model_copy(update={"api_query_timeout": 0.05})
    with running_api(slow) as base, httpx.Client(base_url=base) as client:
        from newsloom import db

        original = db.ping
        try:
            db.ping = lambda conn: conn.execute("SELECT pg_sleep(2)")
            response = client.get("/healthz")
        finally:
            db.ping = original
    assert response.status_code == 503
    assert "took too long" in response.json()["message"]


def test_times_are_utc_whatever_the_servers_zone(servers):
    with scratch_database(servers[0], label="zone") as url:
        with db.connect(url) as conn:
            conn.autocommit = True
            conn.execute(f"ALTER DATABASE \"{conn.info.dbname}\" SET timezone = 'Asia/Tokyo'")
        with db.connect(url) as conn:
            assert conn.execute("SHOW timezone").fetchone()["TimeZone"] == "Asia/Tokyo"
        pool = db.make_read_pool(url, 1, 5.0)
        try:
            with pool.connection() as conn:
                now = conn.execute("SELECT now() AS t").fetchone()["t"]
            assert now.utcoffset().total_seconds() == 0 and str(now.tzinfo) == "UTC"
        finally:
            pool.close()


def test_keys_required_for_the_api(keyed_api):
    refused = keyed_api.get("/api/v1/articles")
    assert refused.status_code == 401
    assert refused.json() == {
        "status": 401,
        "message": "send a valid API key as `Authorization: Bearer KEY`",
    }
    assert refused.headers["www-authenticate"].startswith("Bearer")
    for header in ("Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", "Bearer", ""):
        assert keyed_api.get("/api/v1/feeds", headers={"Authorization": header}).status_code == 401
    assert keyed_api.get("/metrics").status_code == 401
    good = keyed_api.get("/api/v1/articles", headers={"Authorization": f"Bearer {KEY}"})
    assert good.status_code == 200 and len(good.json()["articles"]) == 4
    assert (
        keyed_api.get("/api/v1/feeds", headers={"Authorization": "bearer other"}).status_code == 200
    )
    # Liveness and the API's description stay public.
    assert keyed_api.get("/healthz").status_code == 200
    assert keyed_api.get("/api/v1/openapi.json").status_code == 200


def test_web_page_asks_for_a_key_once(keyed_api):
    page = keyed_api.get("/feeds")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Ffeeds"
    wrong = keyed_api.post("/login", data={"key": "nope", "next": "/feeds"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert "newsloom_session" not in keyed_api.cookies
    login = keyed_api.post("/login", data={"key": KEY, "next": "/feeds"})
    assert login.status_code == 303 and login.headers["location"] == "/feeds"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and KEY not in cookie
    assert keyed_api.get("/feeds").status_code == 200
    # The session opens pages only: the API still wants the bearer key.
    assert keyed_api.get("/api/v1/feeds").status_code == 401
    keyed_api.post("/logout")
    assert keyed_api.get("/feeds").status_code == 303


def test_login_never_redirects_off_site(keyed_api):
    login = keyed_api.post("/login", data={"key": KEY, "next": "//evil.example/x"})
    assert login.headers["location"] == "/"


def test_pages_render(api, filled):
    home = api.get("/")
    assert home.status_code == 200 and "Harbour strike ends" in home.text
    assert '<meta name="viewport"' in home.text
    search = api.get("/", params={"q": "Sturm"})
    assert "Sturm über Berlin" in search.text and "Harbour strike ends" not in search.text
    article = api.get(f"/articles/{filled['https://example.org/harbour']}")
    assert "utm_source=x" in article.text and "Port Authority" in article.text
    entities = api.get("/entities")
    assert "Angela Merkel" in entities.text
    merkel = ok(api.get("/api/v1/entities"))["entities"][0]["id"]
    entity = api.get(f"/entities/{merkel}")
    assert entity.text.count('class="bar"') == 90 and "Merkel visits Rotterdam" in entity.text
    feeds = api.get("/feeds")
    assert "failing" in feeds.text and feeds.text.count('class="bar"') == 48
    assert "ReadTimeout" in api.get("/dead-letters").text
    bad = api.get("/", params={"since": "soon"})
    assert bad.status_code == 400 and "since must be an ISO 8601" in bad.text
    assert api.get("/articles/424242").status_code == 404


def test_serve_refuses_a_public_address_without_keys(app_env):
    import subprocess
    import sys

    env = {**app_env, "NEWSLOOM_HTTP_HOST": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "newsloom", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "NEWSLOOM_HTTP_HOST=0.0.0.0" in done.stderr
    assert "NEWSLOOM_API_KEYS" in done.stderr


def test_serve_with_two_processes(app_env, conn, tmp_path):
    from support import serve_process, wait_until

    fill(conn)
    env = {**app_env, "NEWSLOOM_HTTP_WORKERS": "2"}
    with serve_process(env, tmp_path / "serve.log") as (base, process):
        titles = [a["title"] for a in httpx.get(f"{base}/api/v1/articles").json()["articles"]]
        assert "Harbour strike ends" in titles
        wait_until(
            lambda: (tmp_path / "serve.log").read_text().count("Started server process") == 2,
            60,
            "both processes to start",
        )
        # A cursor made by one process is good in the other (they share one secret): each
        # request on a connection of its own, so both processes answer some of them.
        for _ in range(30):
            first = httpx.get(f"{base}/api/v1/articles", params={"limit": 1}).json()
            older = httpx.get(base + first["next"])
            assert older.status_code == 200, older.text
    assert process.returncode == 0


def test_home_page_is_rendered_at_most_once_a_second(conn, settings):
    import time

    from support import store_text, wait_until

    fill(conn)
    with running_api(settings) as base, httpx.Client(base_url=base) as client:
        started = time.monotonic()
        first = client.get("/")
        assert first.status_code == 200 and "Harbour strike ends" in first.text
        assert first.headers["content-type"] == "text/html; charset=utf-8"
        store_text(conn, "https://example.org/fresh", "Fresh news " * 40, title="Fresh story")
        # Within the second, the kept page (a filtered one is rendered anew); then the new one.
        if time.monotonic() - started < 0.8:
            assert "Fresh story" not in client.get("/").text
        assert "Fresh story" in client.get("/", params={"language": "en"}).text
        wait_until(lambda: "Fresh story" in client.get("/").text, 5, "the page to be renewed")


def test_home_page_pages_older(api, monkeypatch):
    from newsloom.api import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    first = api.get("/", params={"language": "en"})
    assert "Harbour strike ends" in first.text and "Merkel visits Rotterdam" not in first.text
    older = re.search(r'href="(/\?[^"]*cursor=[^"]+)"', first.text).group(1)
    second = api.get(html.unescape(older))
    assert second.status_code == 200 and "Merkel visits Rotterdam" in second.text
    assert "Harbour strike ends" not in second.text and "Older" not in second.text


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_only_loopback_without_keys(host, loopback):
    from newsloom.api.auth import check_listen_address
    from newsloom.errors import SettingsError

    keyless = load_settings(http_host=host, api_keys=())
    if loopback:
        check_listen_address(keyless)
    else:
        with pytest.raises(SettingsError, match="is not a loopback address"):
            check_listen_address(keyless)
    check_listen_address(load_settings(http_host=host, api_keys=("k",)))
