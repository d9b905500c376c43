"""Running the pipeline: up, scheduler, worker, migrate, init-db, health."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer

from newsloom.broker import DELIVER_QUEUE, FETCH_QUEUE, PROCESS_QUEUE
from newsloom.cli import base
from newsloom.cli.base import app

if TYPE_CHECKING:
    from newsloom.migrate import Migration
    from newsloom.settings import Settings

QUEUES = (FETCH_QUEUE, PROCESS_QUEUE, DELIVER_QUEUE)


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
    from newsloom import log, metrics, queue

    celery = queue.make_app(settings)
    try:
        metrics.serve(settings.metrics_port, lambda: queue.queue_depths(celery))
    except OSError as exc:  # a busy port costs the metrics, not the pipeline
        log.get_logger(__name__).error(
            "metrics not served", port=settings.metrics_port, error=str(exc)
        )


def _children_env(env: dict[str, str]) -> dict[str, str]:
    """Children count into the parent's metrics directory; only the parent serves."""
    return {**env, "NEWSLOOM_METRICS_PORT": "0"}


def _give_back_work(settings: Settings) -> Callable[[str], None]:
    """What the supervisor does when a worker died: its messages (running, prefetched,
    waiting for a countdown) go back to their queues now, not after the visibility
    timeout. Its process group is gone by then, so none of them is still running."""
    from newsloom import log, queue

    logger = log.get_logger(__name__)

    def on_death(name: str) -> None:
        if not name.startswith("worker-"):
            return
        died_at = time.time()
        celery = queue.make_app(settings)
        try:
            restored = queue.restore_orphans(celery, settings, taken_before=died_at)
        finally:
            celery.close()
        if restored is None:
            logger.warning(
                "work of a dead worker not given back now: a worker did not "
                "answer; the scheduler gives it back later",
                process=name,
            )
        else:
            logger.info("work of a dead worker given back", process=name, messages=restored)

    return on_death


def _migrate(database_url: str) -> list[Migration]:
    from newsloom import db, migrate

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
    from newsloom import db, preflight
    from newsloom.scheduler.dispatch import Dispatcher
    from newsloom.scheduler.service import Scheduler

    settings = base.settings_for_command()
    base.require_servers(settings)
    preflight.run(settings, feeds=True, migrate=False, models=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _serve_metrics(settings)
    pool = db.make_pool(settings.require_database_url(), max_size=settings.poll_concurrency + 2)
    # Webhook deliveries are dispatched beside the polls, on a thread of their own.
    dispatcher = threading.Thread(target=Dispatcher(settings, pool, stop).run, name="dispatch")
    dispatcher.start()
    try:
        Scheduler(settings, pool, stop).run()
    finally:
        stop.set()
        dispatcher.join()
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
def worker(
    queues: Annotated[
        str,
        typer.Option(
            "--queues",
            "-Q",
            callback=_check_queues,
            help="Comma-separated: fetch (I/O, threads), process (CPU, processes), "
            "deliver (webhooks, threads).",
        ),
    ] = ",".join(QUEUES),
) -> None:
    """Run Celery workers for the given queues."""
    _prepare_metrics()
    from newsloom import preflight
    from newsloom.supervise import child_commands, supervise, worker_argv

    chosen = _parse_queues(queues)
    settings = base.settings_for_command()
    base.require_servers(settings)
    preflight.run(settings, feeds=False, migrate=False, models=PROCESS_QUEUE in chosen)
    _serve_metrics(settings)
    if len(chosen) == 1:
        from newsloom import queue
        from newsloom.worker import tasks  # noqa: F401 - registers the task bodies on queue.app

        queue.app.worker_main(worker_argv(chosen[0], settings))
        return
    raise typer.Exit(
        supervise(
            child_commands(settings, scheduler=False, queues=chosen),
            _children_env(dict(os.environ)),
            _give_back_work(settings),
        )
    )


@app.command()
def up() -> None:
    """Everything in the foreground: schema, scheduler and workers (embedded servers if unset)."""
    _prepare_metrics()
    from newsloom import preflight
    from newsloom.embedded import embedded_servers, running_servers
    from newsloom.errors import SettingsError
    from newsloom.supervise import child_commands, supervise

    # Not the servers of another `up`: this one starts its own when the URLs are unset.
    settings = base.settings_for_command(find_embedded=False)
    # Files and models first: a mistake there starts nothing, not even embedded servers.
    preflight.check_feeds(settings)
    preflight.check_models(settings)
    if settings.embedded and running_servers(settings.data_dir) is not None:
        raise SettingsError(
            f"another `newsloom up` runs the embedded servers of "
            f"NEWSLOOM_DATA_DIR={settings.data_dir}: stop it, or choose another "
            "NEWSLOOM_DATA_DIR (its other commands find it by themselves)"
        )
    with ExitStack() as stack:
        if settings.embedded:
            urls = stack.enter_context(embedded_servers(settings.data_dir))
            settings = settings.model_copy(
                update={
                    "database_url": settings.database_url or urls.database_url,
                    "redis_url": settings.redis_url or urls.redis_url,
                }
            )
            typer.echo(
                f"embedded servers under {settings.data_dir.resolve()}\n"
                f"  query with: psql '{settings.database_url}'",
                err=True,
            )
        preflight.check_database(settings, migrate=True)
        preflight.check_broker(settings)
        assert settings.database_url
        assert settings.redis_url
        env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
        _serve_metrics(settings)
        code = supervise(
            child_commands(settings, scheduler=True, queues=QUEUES),
            _children_env(env),
            _give_back_work(settings),
        )
    raise typer.Exit(code)


@app.command()
def health() -> None:
    """Exit 0 when the broker and the database answer and the schema is current."""
    import psycopg

    from newsloom import db, migrate, queue

    settings = base.settings_for_command()
    base.require_servers(settings)
    problems = []
    try:
        with db.connect(settings.require_database_url()) as conn:
            applied, expected = migrate.applied_version(conn), migrate.latest_version()
            if applied is not None and applied > expected:
                problems.append(
                    f"schema version {applied} is newer than this newsloom's "
                    f"({expected}): upgrade newsloom"
                )
            elif applied != expected:
                problems.append(
                    f"schema version {applied or 'none'}, expected {expected}: "
                    "run `newsloom migrate`"
                )
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
