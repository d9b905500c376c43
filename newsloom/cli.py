"""The `newsloom` command line."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import ExitStack
from typing import Annotated

import typer

from newsloom import db, log
from newsloom.errors import NewsloomError, SettingsError
from newsloom.queue import FETCH_QUEUE, PROCESS_QUEUE
from newsloom.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Collect news articles from RSS/Atom feeds into Postgres.")
QUEUES = (FETCH_QUEUE, PROCESS_QUEUE)


def _settings() -> Settings:
    settings = get_settings()
    log.configure(settings)
    return settings


def _require_servers(settings: Settings) -> None:
    if settings.embedded:
        raise SettingsError("DATABASE_URL and REDIS_URL must be set (only `newsloom up` "
                            "starts embedded servers)")


def _apply_schema(database_url: str) -> None:
    with db.connect(database_url) as conn:
        db.apply_schema(conn)


@app.command("init-db")
def init_db() -> None:
    """Apply schema.sql to DATABASE_URL; safe to run again."""
    settings = _settings()
    if settings.database_url is None:
        raise SettingsError("DATABASE_URL is not set")
    _apply_schema(settings.database_url)
    typer.echo("schema applied")


@app.command()
def scheduler() -> None:
    """Run the scheduler alone: poll due feeds and enqueue new article URLs."""
    from newsloom.scheduler.feedsfile import load_feeds
    from newsloom.scheduler.service import Scheduler

    settings = _settings()
    _require_servers(settings)
    load_feeds(settings.feeds, settings.default_interval)  # refuse to start on a bad file
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pool = db.make_pool(settings.database_url, max_size=settings.poll_concurrency + 1)
    try:
        Scheduler(settings, pool, stop).run()
    finally:
        pool.close()


def _parse_queues(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    unknown = set(queues) - set(QUEUES)
    if not queues or unknown:
        raise typer.BadParameter(f"choose from {', '.join(QUEUES)} (got {value!r})")
    return list(dict.fromkeys(queues))


@app.command()
def worker(queues: Annotated[str, typer.Option(
        "--queues", "-Q", help="Comma-separated: fetch (I/O, threads), process (CPU, processes).")]
        = ",".join(QUEUES)) -> None:
    """Run Celery workers for the given queues."""
    from newsloom.supervise import child_commands, supervise, worker_argv

    chosen = _parse_queues(queues)
    settings = _settings()
    _require_servers(settings)
    if len(chosen) == 1:
        from newsloom.worker.tasks import app as celery_app
        celery_app.worker_main(worker_argv(chosen[0], settings))
        return
    raise typer.Exit(supervise(child_commands(settings, scheduler=False, queues=chosen),
                               dict(os.environ)))


@app.command()
def up() -> None:
    """Everything in the foreground: schema, scheduler and workers (embedded servers if unset)."""
    from newsloom.embedded import embedded_servers
    from newsloom.scheduler.feedsfile import load_feeds
    from newsloom.supervise import child_commands, supervise

    settings = _settings()
    load_feeds(settings.feeds, settings.default_interval)  # refuse to start on a bad file
    env = dict(os.environ)
    with ExitStack() as stack:
        if settings.embedded:
            urls = stack.enter_context(embedded_servers(settings.data_dir))
            env.setdefault("DATABASE_URL", urls.database_url)
            env.setdefault("REDIS_URL", urls.redis_url)
            typer.echo(f"embedded servers under {settings.data_dir.resolve()}\n"
                       f"  query with: psql '{env['DATABASE_URL']}'", err=True)
        _apply_schema(env["DATABASE_URL"])
        code = supervise(child_commands(settings, scheduler=True, queues=QUEUES), env)
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except NewsloomError as exc:
        typer.echo(f"newsloom: error: {exc}", err=True)
        sys.exit(2)
