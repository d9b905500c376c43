

def test_a_slow_endpoint_holds_up_no_other(conn, settings, app_env, tmp_path):
    """The dispatcher and a deliver worker, as `up` runs them: an endpoint that answers
    after the timeout is retried on its own while another gets every event."""
    import subprocess
    import sys
    import threading

    from newsloom.scheduler.dispatch import Dispatcher
    from support import stop_workers, wait_until

    with Receiver(SECRET, delay=5) as slow, Receiver(SECRET) as fast:
        settings.feeds.write_text(
            '[[feed]]\nurl = "https://a.org/feed"\n\n'
            f'[[webhook]]\nurl = "{slow.url}"\nsecret = "{SECRET}"\n\n'
            f'[[webhook]]\nurl = "{fast.url}"\nsecret = "{SECRET}"\n')
        env = {**app_env, "NEWSLOOM_WEBHOOK_TIMEOUT": "1s", "NEWSLOOM_RETRY_BASE": "2s"}
        with (tmp_path / "deliver.log").open("wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "newsloom", "worker", "-Q", "deliver"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)
        pool, stop = db.make_pool(settings.database_url), threading.Event()
        dispatcher = threading.Thread(target=Dispatcher(settings, pool, stop).run)
        dispatcher.start()
        try:
            wait_until(lambda: len(db.webhook_status(conn)) == 2, 30, "the webhooks synced")
            for n, text in enumerate((TEXT, OTHER, THIRD)):
                store_text(conn, f"https://a.org/{n}", text)
            wait_until(lambda: len(fast.received) == 3, 90, "the fast endpoint's events")
            slow_status = next(w for w in db.webhook_status(conn) if w["url"] == slow.url)
            assert slow_status["delivered"] == 0 and "Timeout" in slow_status["last_error"]
        finally:
            stop.set()
            dispatcher.join()
            pool.close()
            stop_workers([worker])
    assert fast.event_ids() == event_ids(conn) and all(r.signed for r in fast.received)
