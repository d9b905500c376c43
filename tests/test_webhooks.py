"""Webhooks: the [[webhook]] tables, and deliveries to a loopback receiver that checks
signatures: in order, at least once, retried, dead-lettered and replayed, disabled by 410,
kept from private addresses, filtered."""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
import threading

import pytest
from support import stop_workers, store_text, wait_until
from test_cli import newsloom
from test_events import OTHER, TEXT
from test_export import FOURTH, THIRD
from webhook_receiver import Receiver, verify

from newsloom import db
from newsloom.errors import FeedsFileError
from newsloom.scheduler.dispatch import Dispatcher
from newsloom.scheduler.feedsfile import WebhookConfig, load_webhooks
from newsloom.settings import load_settings
from newsloom.worker.deliver import deliver_step, sign
from newsloom.worker.pipeline import Context

SECRET = "s3cret"


def write_feeds(tmp_path, text: str):
    path = tmp_path / "feeds.toml"
    path.write_text('[[feed]]\nurl = "https://a.org/feed"\nname = "Alpha"\n\n' + text)
    return path


def test_webhook_tables(tmp_path):
    path = write_feeds(
        tmp_path,
        """
[[webhook]]
url = "https://hooks.example/one"
secret = "abc"

[[webhook]]
url = "https://hooks.example/two"
secret_env = "HOOK_SECRET"
events = ["stored", "updated"]
feeds = ["Alpha"]
languages = ["en"]
entities = ["Harbour Council"]
""",
    )
    assert load_webhooks(path, {"HOOK_SECRET": "xyz"}) == [
        WebhookConfig("https://hooks.example/one", "abc"),
        WebhookConfig(
            "https://hooks.example/two",
            "xyz",
            ("stored", "updated"),
            ("https://a.org/feed",),
            ("en",),
            ("Harbour Council",),
        ),
    ]


@pytest.mark.parametrize(
    "table, line, reason",
    [
        ('url = "https://h.example/"\nsecret = "a"\nfeeds = ["Beta"]', 8, "names feed 'Beta'"),
        ('url = "https://h.example/"\nsecret_env = "NOPE"', 7, "'NOPE' is not set"),
        ('url = "https://h.example/"\nsecret = "a"\nevents = ["deleted"]', 8, "unknown event"),
        ('url = "ftp://h.example/"\nsecret = "a"', 6, "only http and https"),
        ('url = "https://h.example/"', 6, "needs secret or secret_env"),
        ('url = "https://h.example/"\nsecret = "a"\nretries = 3', 8, "unknown key 'retries'"),
    ],
)
def test_bad_webhook_tables_name_file_and_line(tmp_path, table, line, reason):
    path = write_feeds(tmp_path, "[[webhook]]\n" + table + "\n")
    with pytest.raises(FeedsFileError) as error:
        load_webhooks(path, {})
    assert error.value.line == line and reason in error.value.reason


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":1}'
    assert sign("k", 1700000000, body) == (
        "sha256=" + hmac.new(b"k", b"1700000000." + body, "sha256").hexdigest()
    )
    headers = {
        "X-Newsloom-Timestamp": "1700000000",
        "X-Newsloom-Signature": sign("k", 1700000000, body),
    }
    assert verify("k", headers, body, tolerance=float("inf"))
    assert not verify("other", headers, body, tolerance=float("inf"))


@pytest.fixture
def deliver_ctx(settings):
    context = Context(
        load_settings(
            **{
                **settings.model_dump(),
                "retry_base": 0.01,
                "max_attempts": 3,
                "webhook_timeout": 2.0,
            }
        )
    )
    yield context
    context.pool.close()
    context.http.close()


def listen(conn, url: str, **filters) -> None:
    """Subscribe `url` (as the dispatcher does from the feeds file)."""
    db.sync_webhooks(
        conn,
        [
            (
                url,
                SECRET,
                filters.get("events", ()),
                filters.get("feeds", ()),
                filters.get("languages", ()),
                filters.get("entities", ()),
            )
        ],
    )


def drain(ctx: Context, conn, rounds: int = 50) -> None:
    """Dispatch and deliver until no endpoint is due (retries made due at once)."""
    for _ in range(rounds):
        conn.execute("UPDATE webhooks SET next_attempt_at = now() WHERE next_attempt_at > now()")
        due = db.claim_due_webhooks(conn, 60)
        if not due:
            return
        for row in due:
            deliver_step(ctx, row["id"], row["lease_token"])
    raise AssertionError("deliveries did not settle")


def event_ids(conn) -> list[int]:
    return [r["id"] for r in conn.execute("SELECT id FROM events ORDER BY id")]


def test_events_arrive_signed_in_order_after_failures(conn, deliver_ctx):
    with Receiver(SECRET, fail_first=2) as receiver:
        listen(conn, receiver.url)
        _, first = store_text(conn, "https://a.org/1", TEXT)
        store_text(conn, "https://mirror.org/1", TEXT)
        store_text(conn, "https://a.org/2", OTHER)
        drain(deliver_ctx, conn)
    assert receiver.event_ids() == event_ids(conn)
    assert all(r.signed for r in receiver.received)
    document = receiver.received[1].document
    assert document["event"]["kind"] == "duplicate" and document["id"] == first
    assert document["urls"] == ["https://a.org/1", "https://mirror.org/1"]
    assert document["schema"] == "newsloom.article/1"
    [webhook] = db.webhook_status(conn)
    assert webhook["delivered"] == 3 and webhook["behind"] == 0 and webhook["dead_letters"] == 0


def test_exhausted_delivery_is_dead_lettered_and_replayed(conn, deliver_ctx):
    with Receiver(SECRET, fail_first=3) as receiver:  # max_attempts is 3
        listen(conn, receiver.url)
        store_text(conn, "https://a.org/1", TEXT)
        store_text(conn, "https://a.org/2", OTHER)
        drain(deliver_ctx, conn)
        first, second = event_ids(conn)
        assert receiver.event_ids() == [second]  # the endpoint moved on
        [letter] = db.list_dead_letters(conn)
        assert letter["task"] == "newsloom.deliver" and letter["attempts"] == 3
        assert letter["url"] == receiver.url
        assert db.replay_dead_letters(conn, [letter["id"]]) == [
            {"url_id": None, "state": "deliver"}
        ]
        drain(deliver_ctx, conn)
    assert receiver.event_ids() == [second, first]
    assert db.list_dead_letters(conn) == []
    assert all(r.signed for r in receiver.received)


def test_410_disables_the_endpoint_and_status_says_so(conn, deliver_ctx, app_env):
    with Receiver(SECRET, status=410) as receiver:
        listen(conn, receiver.url)
        store_text(conn, "https://a.org/1", TEXT)
        drain(deliver_ctx, conn)
        store_text(conn, "https://a.org/2", OTHER)
        assert db.claim_due_webhooks(conn, 60) == []
    [webhook] = db.webhook_status(conn)
    assert webhook["disabled_at"] is not None and "410" in webhook["disabled_reason"]
    assert receiver.attempts == 1
    status = newsloom("status", env=app_env)
    assert status.returncode == 0, status.stderr
    assert "1 listed, 1 disabled" in status.stdout and "DISABLED" in status.stdout


def test_private_addresses_and_redirects_are_refused(conn, deliver_ctx):
    strict = Context(
        load_settings(**{**deliver_ctx.settings.model_dump(), "allow_private_networks": False})
    )
    with (
        Receiver(SECRET) as receiver,
        Receiver(SECRET, status=302, location=receiver.url) as redirecting,
    ):
        listen(conn, receiver.url)
        store_text(conn, "https://a.org/1", TEXT)
        drain(strict, conn)
        assert receiver.attempts == 0
        [letter] = db.list_dead_letters(conn)
        assert "blocked_address" in letter["error"]
        listen(conn, redirecting.url)  # instead of the first: sent the event again
        conn.execute("UPDATE webhooks SET delivered_through = 0")
        drain(deliver_ctx, conn)
    assert receiver.attempts == 0 and redirecting.attempts == 1
    errors = [r["error"] for r in db.list_dead_letters(conn)]
    assert any("redirect to" in e and "not followed" in e for e in errors)
    strict.pool.close()
    strict.http.close()


def test_filters_choose_the_events(conn, deliver_ctx):
    db.sync_feeds(conn, [("https://a.org/feed", "Alpha", 900, None, True)])
    alpha = conn.execute("SELECT id FROM feeds").fetchone()["id"]
    with (
        Receiver(SECRET) as dupes,
        Receiver(SECRET) as german,
        Receiver(SECRET) as council,
        Receiver(SECRET) as from_alpha,
    ):
        db.sync_webhooks(
            conn,
            [
                (dupes.url, SECRET, ("duplicate",), (), (), ()),
                (german.url, SECRET, (), (), ("de",), ()),
                (council.url, SECRET, (), (), (), ("harbour council",)),
                (from_alpha.url, SECRET, (), ("https://a.org/feed",), (), ()),
            ],
        )
        _, sea_wall = store_text(
            conn, "https://a.org/1", TEXT, entities=[("Harbour Council", "ORG", 1)]
        )
        store_text(conn, "https://mirror.org/1", TEXT)
        _, bridge = store_text(conn, "https://b.org/2", THIRD, language="de")
        _, birds = store_text(conn, "https://a.org/3", FOURTH, feed_id=alpha)
        drain(deliver_ctx, conn)
    kinds = {r.document["event"]["kind"] for r in dupes.received}
    assert kinds == {"duplicate"} and len(dupes.received) == 1
    assert [r.document["id"] for r in german.received] == [bridge]
    assert [r.document["id"] for r in council.received] == [sea_wall, sea_wall]
    assert [r.document["id"] for r in from_alpha.received] == [birds]
    # Every endpoint's cursor passed every event, delivered or not.
    assert {w["behind"] for w in db.webhook_status(conn)} == {0}


def test_new_endpoint_starts_at_the_newest_event(conn, deliver_ctx):
    store_text(conn, "https://a.org/1", TEXT)
    with Receiver(SECRET) as receiver:
        listen(conn, receiver.url)
        _, later = store_text(conn, "https://a.org/2", OTHER)
        drain(deliver_ctx, conn)
    assert [r.document["id"] for r in receiver.received] == [later]
    assert json.dumps(receiver.received[0].document)  # plain JSON


def test_a_slow_endpoint_holds_up_no_other(conn, settings, app_env, tmp_path):
    """The dispatcher and a deliver worker, as `up` runs them: an endpoint that answers
    after the timeout is retried on its own while another gets every event."""
    with Receiver(SECRET, delay=5) as slow, Receiver(SECRET) as fast:
        settings.feeds.write_text(
            '[[feed]]\nurl = "https://a.org/feed"\n\n'
            f'[[webhook]]\nurl = "{slow.url}"\nsecret = "{SECRET}"\n\n'
            f'[[webhook]]\nurl = "{fast.url}"\nsecret = "{SECRET}"\n'
        )
        env = {**app_env, "NEWSLOOM_WEBHOOK_TIMEOUT": "1s", "NEWSLOOM_RETRY_BASE": "2s"}
        with (tmp_path / "deliver.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "newsloom", "worker", "-Q", "deliver"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pool, stop = db.make_pool(settings.database_url), threading.Event()
        dispatcher = threading.Thread(target=Dispatcher(settings, pool, stop).run)
        dispatcher.start()
        try:
            wait_until(lambda: len(db.webhook_status(conn)) == 2, 30, "the webhooks synced")
            for n, text in enumerate((TEXT, OTHER, THIRD)):
                store_text(conn, f"https://a.org/{n}", text)
            wait_until(lambda: len(fast.received) == 3, 90, "the fast endpoint's events")

            def slow_status() -> dict:
                return next(w for w in db.webhook_status(conn) if w["url"] == slow.url)

            assert slow_status()["delivered"] == 0
            wait_until(
                lambda: "Timeout" in (slow_status()["last_error"] or ""),
                30,
                "the slow endpoint's timeout recorded",
            )
        finally:
            stop.set()
            dispatcher.join()
            pool.close()
            stop_workers([worker])
    assert fast.event_ids() == event_ids(conn) and all(r.signed for r in fast.received)
