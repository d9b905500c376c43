"""Running the pipeline: up, scheduler, worker, migrate, init-db, health."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
from contextlib import ExitStack
from typing import Annotated

import psycopg
import typer

from newsloom import db, log, queue
from newsloom.cli import base
from newsloom.cli.base import app
from newsloom.queue import FETCH_QUEUE, PROCESS_QUEUE
from newsloom.settings import Settings, load_settings

QUEUES = (FETCH_QUEUE, PROCESS_QUEUE)


def _prepare_metrics() -> None:
    """Every process of this command's tree counts into one fresh directory. Must run
    before anything imports prometheus_client (newsloom.metrics)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        directory = tempfile.mkdtemp(prefix="newsloom-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _serve_metrics(settings: Settings) -> None:
    """Serve the metrics of this process and its children, if a port is set."""
    if not settings.metrics_port:
        return
    from newsloom import metrics

    celery = queue.make_app(settings)
    try:
        metrics.serve(settings.metrics_port, lambda: queue.queue_depths(celery))
    except OSError as exc:  # a busy port costs the metrics, not the pipeline
        log.get_logger(__name__).error("metrics not served", port=settings.metrics_port,
                                       error=str(exc))


def _children_env(env: dict[str, str]) -> dict[str, str]:
    """Children count into the parent's metrics directory; only the parent serves."""
    return {**env, "NEWSLOOM_METRICS_PORT": "0"}


def _migrate(database_url: str) -> list:
    from newsloom import migrate

    with db.connect(database_url) as conn:
        return migrate.apply(conn)


@app.command()
def migrate() -> None:
    """Apply pending schema migrations to DATABASE_URL; safe to run again."""
    applied = _migrate(base.database_url(base.settings_for_command()))
    for migration in applied:
        typer.echo(f"applied {migration.version:04d}_{migration.name}")
    typer.echo(f"{len(applied)} migration(s) applied; the schema is current")


@app.command("init-db")
def init_db() -> None:
    """Create or bring up to date the schema (as `migrate`); safe to run again."""
    migrate()


@app.command()
def scheduler() -> None:
    """Run the scheduler alone: poll due feeds and enqueue new article URLs."""
    _prepare_metrics()
    from newsloom.scheduler.feedsfile import load_feeds
    from newsloom.scheduler.service import Scheduler

    settings = base.settings_for_command()
    base.require_servers(settings)
    load_feeds(settings.feeds, settings.default_interval)  # refuse to start on a bad file
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _serve_metrics(settings)
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


def _check_queues(value: str) -> str:
    _parse_queues(value)  # while parsing, so a bad value fails before anything starts
    return value


@app.command()
def worker(queues: Annotated[str, typer.Option(
        "--queues", "-Q", callback=_check_queues,
        help="Comma-separated: fetch (I/O, threads), process (CPU, processes).")]
        = ",".join(QUEUES)) -> None:
    """Run Celery workers for the given queues."""
    _prepare_metrics()
    from newsloom.supervise import child_commands, supervise, worker_argv

    chosen = _parse_queues(queues)
    settings = base.settings_for_command()
    base.require_servers(settings)
    _serve_metrics(settings)
    if len(chosen) == 1:
        from newsloom.worker.tasks import app as celery_app
        celery_app.worker_main(worker_argv(chosen[0], settings))
        return
    raise typer.Exit(supervise(child_commands(settings, scheduler=False, queues=chosen),
                               _children_env(dict(os.environ))))


@app.command()
def up() -> None:
    """Everything in the foreground: schema, scheduler and workers (embedded servers if unset)."""
    _prepare_metrics()
    from newsloom.embedded import embedded_servers
    from newsloom.scheduler.feedsfile import load_feeds
    from newsloom.supervise import child_commands, supervise

    settings = base.settings_for_command()
    load_feeds(settings.feeds, settings.default_interval)  # refuse to start on a bad file
    env = dict(os.environ)
    with ExitStack() as stack:
        if settings.embedded:
            urls = stack.enter_context(embedded_servers(settings.data_dir))
            env.setdefault("DATABASE_URL", urls.database_url)
            env.setdefault("REDIS_URL", urls.redis_url)
            typer.echo(f"embedded servers under {settings.data_dir.resolve()}\n"
                       f"  query with: psql '{env['DATABASE_URL']}'", err=True)
        _migrate(env["DATABASE_URL"])
        _serve_metrics(load_settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"]))
        code = supervise(child_commands(settings, scheduler=True, queues=QUEUES), _children_env(env))
    raise typer.Exit(code)


@app.command()
def health() -> None:
    """Exit 0 when the broker and the database answer and the schema is current."""
    from newsloom import migrate

    settings = base.settings_for_command()
    base.require_servers(settings)
    problems = []
    try:
        with db.connect(settings.database_url) as conn:
            applied, expected = migrate.applied_version(conn), migrate.latest_version()
            if applied is not None and applied > expected:
                problems.append(f"schema version {applied} is newer than this newsloom's "
                                f"({expected}): upgrade newsloom")
            elif applied != expected:
                problems.append(f"schema version {applied or 'none'}, expected {expected}: "
                                "run `newsloom migrate`")
    except psycopg.OperationalError as exc:
        problems.append(f"database unreachable: {str(exc).strip()}")
    celery = queue.make_app(settings)
    try:
        with celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker is the answer
        problems.append(f"broker unreachable: {exc}")
    finally:
        celery.close()
    for problem in problems:
        typer.echo(f"unhealthy: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("healthy")
