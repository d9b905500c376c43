"""The dead-letter queue on real dead letters: list, show, replay, discard; and status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

from site_fixture import article_html, seed_article
from support import run_url, wait_until

from newsloom import db


def newsloom(env, *args):
    result = subprocess.run(
        [sys.executable, "-m", "newsloom", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result


def make_dead_letters(ctx, site, conn):
    """Two real dead letters: a server answering 503 and one resetting connections."""
    db.sync_feeds(
        conn,
        [
            (site.url("/feed-a"), "Feed A", 900, None, True),
            (site.url("/feed-b"), "Feed B", 900, None, True),
        ],
    )
    feeds = {f["name"]: f["id"] for f in db.list_feeds(conn)}
    site.add("/busy", "busy", status=503)

    def reset(_request):
        raise ConnectionResetError

    site.add_handler("/reset", reset)
    busy = run_url(ctx, site.url("/busy"), feeds["Feed A"])
    reset_row = run_url(ctx, site.url("/reset"), feeds["Feed B"])
    assert busy["state"] == reset_row["state"] == "dead"
    letters = {r["url"]: r["id"] for r in db.list_dead_letters(conn)}
    return letters[site.url("/busy")], letters[site.url("/reset")]


def test_list_show_and_filter(ctx, site, conn, app_env):
    busy_id, reset_id = make_dead_letters(ctx, site, conn)
    listed = json.loads(newsloom(app_env, "dlq", "list", "--json").stdout)
    assert {r["id"] for r in listed} == {busy_id, reset_id}
    by_error = json.loads(newsloom(app_env, "dlq", "list", "--error", "Transient", "--json").stdout)
    assert [r["id"] for r in by_error] == [busy_id]
    by_feed = json.loads(newsloom(app_env, "dlq", "list", "--feed", "Feed B", "--json").stdout)
    assert [r["id"] for r in by_feed] == [reset_id]
    table = newsloom(app_env, "dlq", "list")
    assert table.returncode == 0 and "2 dead letter(s)" in table.stdout
    shown = newsloom(app_env, "dlq", "show", str(busy_id))
    assert "HTTP 503" in shown.stdout and "Traceback" in shown.stdout
    assert (
        json.loads(newsloom(app_env, "dlq", "show", str(busy_id), "--json").stdout)["attempts"] == 2
    )
    missing = newsloom(app_env, "dlq", "show", "999999")
    assert missing.returncode == 2 and "no dead letter 999999" in missing.stderr


def test_replay_that_succeeds_resolves_and_discard_closes(ctx, site, conn, app_env, workers):
    busy_id, reset_id = make_dead_letters(ctx, site, conn)
    title, paragraphs = seed_article()
    site.add("/busy", article_html(title, paragraphs))  # the server is healthy again
    result = newsloom(app_env, "dlq", "replay", str(busy_id))
    assert result.returncode == 0 and "replaying 1" in result.stdout

    def resolved():
        return db.get_dead_letter(conn, busy_id)["resolved_at"]

    wait_until(resolved, 60, "the replayed URL to be stored")
    letter = db.get_dead_letter(conn, busy_id)
    assert letter["resolution"] == "replayed" and letter["url_state"] == "stored"
    assert conn.execute("SELECT count(*) AS n FROM articles").fetchone()["n"] == 1

    assert "discarded 1" in newsloom(app_env, "dlq", "discard", str(reset_id)).stdout
    assert json.loads(newsloom(app_env, "dlq", "list", "--json").stdout) == []
    assert len(json.loads(newsloom(app_env, "dlq", "list", "--all", "--json").stdout)) == 2


def test_replay_all_that_fails_again_stays_dead(ctx, site, conn, app_env, workers):
    busy_id, reset_id = make_dead_letters(ctx, site, conn)
    replay = newsloom(app_env, "dlq", "replay", "--all")
    assert "replaying 2" in replay.stdout and "replaying: 2/2" in replay.stderr

    def failed_again():
        return all(
            db.get_dead_letter(conn, i)["url_state"] == "dead"
            and db.get_dead_letter(conn, i)["replays"] == 1
            for i in (busy_id, reset_id)
        )

    wait_until(failed_again, 60, "the replays to fail again")
    assert {r["id"] for r in db.list_dead_letters(conn)} == {busy_id, reset_id}


def test_replay_needs_ids_or_all(app_env, conn):
    result = newsloom(app_env, "dlq", "replay")
    assert result.returncode == 2


def test_status_json_matches_the_ledger(ctx, site, conn, app_env):
    make_dead_letters(ctx, site, conn)
    title, paragraphs = seed_article()
    site.add("/good", article_html(title, paragraphs))
    assert run_url(ctx, site.url("/good"))["state"] == "stored"
    run_url(ctx, site.url("/nowhere"))
    db.record_new_urls(conn, None, [(site.url("/waiting"), None, None)])
    report = json.loads(newsloom(app_env, "status", "--json").stdout)
    outcomes = {(r["state"], r["reason"]): r["total"] for r in report["outcomes"]}
    assert outcomes == {
        ("dead", "Transient"): 1,
        ("dead", "RemoteProtocolError"): 1,
        ("stored", None): 1,
        ("skipped", "http_404"): 1,
        ("queued", None): 1,
    }
    assert report["articles"]["total"] == 1
    assert {r["error_class"]: r["n"] for r in report["dead_letters"]} == {
        "Transient": 1,
        "RemoteProtocolError": 1,
    }
    assert report["queues"] == {"fetch": 0, "process": 0, "deliver": 0}
    assert report["feeds"]["active"] == 2 and report["feeds"]["failing"] == 0
    assert newsloom(app_env, "status").returncode == 0


def test_status_names_the_workers_alive_and_watch_refreshes(app_env, conn, workers, tmp_path):
    def all_workers():
        report = json.loads(newsloom(app_env, "status", "--json").stdout)
        return report if len(report["workers"]) == 3 else None

    report = wait_until(all_workers, 60, "every worker process to answer a ping")
    assert {name.split("-")[0] for name in report["workers"]} == {"fetch", "process", "deliver"}
    assert len(report["articles"]["per_hour"]) == 6
    # Each screen pings the workers for a second: wait for the second screen itself (a fixed
    # wait saw only one under load), with a bound.
    watch = subprocess.Popen(
        [sys.executable, "-m", "newsloom", "status", "--watch", "--interval", "0.2"],
        env={**app_env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bound = threading.Timer(60, watch.send_signal, [signal.SIGINT])
    bound.start()
    screens = 0
    assert watch.stdout is not None
    for line in watch.stdout:
        screens += "worker(s) alive" in line
        if screens == 2:
            break
    watch.send_signal(signal.SIGINT)
    bound.cancel()
    watch.communicate(timeout=30)
    assert watch.returncode == 0
    assert screens == 2  # refreshed at least once
