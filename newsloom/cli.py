"""The `newsloom` command line."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Annotated

import kombu.exceptions
import psycopg
import typer
from rich.console import Console
from rich.table import Table

from newsloom import db, log, queue
from newsloom.errors import NewsloomError, SettingsError
from newsloom.queue import FETCH_QUEUE, PROCESS_QUEUE
from newsloom.settings import Settings, get_settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Collect news articles from RSS/Atom feeds into Postgres.")
dlq_app = typer.Typer(no_args_is_help=True, help="Inspect, replay or discard dead letters.")
app.add_typer(dlq_app, name="dlq")
feeds_app = typer.Typer(no_args_is_help=True, help="List, check and add feeds.")
app.add_typer(feeds_app, name="feeds")
QUEUES = (FETCH_QUEUE, PROCESS_QUEUE)
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _settings() -> Settings:
    settings = get_settings()
    log.configure(settings)
    return settings


def _database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise SettingsError("DATABASE_URL is not set")
    return settings.database_url


def _require_servers(settings: Settings) -> None:
    if settings.embedded:
        raise SettingsError("DATABASE_URL and REDIS_URL must be set (only `newsloom up` "
                            "starts embedded servers)")


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
    applied = _migrate(_database_url(_settings()))
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

    settings = _settings()
    _require_servers(settings)
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
    settings = _settings()
    _require_servers(settings)
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
        _migrate(env["DATABASE_URL"])
        _serve_metrics(load_settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"]))
        code = supervise(child_commands(settings, scheduler=True, queues=QUEUES), _children_env(env))
    raise typer.Exit(code)


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _table(title: str, columns: list[str], rows: list[list[object]]):
    """A titled table; the title on its own line, so a narrow table does not wrap it."""
    from rich.console import Group
    from rich.text import Text

    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else _short(v) for v in row))
    return Group(Text(title, style="bold"), table)


def _print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    Console().print(_table(title, columns, rows))


def _short(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _connect() -> tuple[Settings, object]:
    settings = _settings()
    return settings, db.connect(_database_url(settings))


@feeds_app.command("list")
def feeds_list(as_json: JsonOption = False) -> None:
    """The feeds and their health, from the database."""
    _, conn = _connect()
    with conn:
        rows = db.list_feeds(conn)
    if as_json:
        _print_json(rows)
        return
    _print_table(f"{len(rows)} feed(s)",
                 ["feed", "active", "last success", "last error", "errors in a row",
                  "next check", "polled every", "items seen"],
                 [[r["name"] or r["url"], "yes" if r["active"] else "no", r["last_success_at"],
                   (r["last_error"] or "")[:60], r["consecutive_errors"], r["next_check_at"],
                   f"{r['poll_every_seconds'] or r['interval_seconds']:.0f}s", r["items_seen"]]
                  for r in rows])


@feeds_app.command("check")
def feeds_check(path: Annotated[Path, typer.Argument(metavar="FILE")], as_json: JsonOption = False) -> None:
    """Validate a feeds file and probe each feed; exit 1 if any feed fails."""
    from concurrent.futures import ThreadPoolExecutor

    from newsloom import web
    from newsloom.scheduler.feedsfile import load_feeds
    from newsloom.scheduler.poll import poll_feed

    settings = _settings()
    feeds = load_feeds(path, settings.default_interval)

    def probe(feed) -> dict:
        try:
            result = poll_feed(client, feed.url, settings)
        except Exception as exc:  # noqa: BLE001 - each feed's problem is reported, not raised
            return {"url": feed.url, "ok": False, "entries": None, "error": f"{type(exc).__name__}: {exc}"}
        return {"url": feed.url, "ok": True, "entries": len(result.entries),
                "error": None if not result.rejected_links else
                f"{result.rejected_links} entries without a usable link"}

    with web.make_client(settings) as client, ThreadPoolExecutor(settings.poll_concurrency) as pool:
        results = list(_progress(pool.map(probe, feeds), len(feeds), "probing"))
    if as_json:
        _print_json(results)
    else:
        _print_table(f"{path}: {len(feeds)} feed(s), {sum(not r['ok'] for r in results)} failing",
                     ["feed", "ok", "entries", "problem"],
                     [[r["url"], "yes" if r["ok"] else "NO", r["entries"], r["error"]] for r in results])
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@feeds_app.command("add")
def feeds_add(url: Annotated[str, typer.Argument(help="A feed's URL or a site's home page.")],
              name: Annotated[str | None, typer.Option(help="Name to list it under.")] = None) -> None:
    """Find a site's feed and add it to the feeds file (NEWSLOOM_FEEDS)."""
    from newsloom import web
    from newsloom.scheduler.discover import discover_feed
    from newsloom.scheduler.feedsfile import append_feed

    settings = _settings()
    if "://" not in url:
        url = "https://" + url
    with web.make_client(settings) as client:
        feed_url, title = discover_feed(client, url, settings)
    append_feed(settings.feeds, feed_url, name or title)
    typer.echo(f"added {feed_url}" + (f" ({name or title})" if name or title else "")
               + f" to {settings.feeds}")


@dlq_app.command("list")
def dlq_list(
    error: Annotated[str | None, typer.Option(help="Error class, or text in the message.")] = None,
    feed: Annotated[str | None, typer.Option(help="Feed URL, name or id.")] = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead letters, newest first."""
    _, conn = _connect()
    with conn:
        rows = db.list_dead_letters(conn, error=error, feed=feed,
                                    include_resolved=include_resolved, limit=limit)
    if as_json:
        _print_json(rows)
        return
    _print_table(f"{len(rows)} dead letter(s)",
                 ["id", "last failed", "task", "error", "attempts", "replays", "feed", "url"],
                 [[r["id"], r["last_failed_at"], r["task"], r["error"][:80], r["attempts"],
                   r["replays"], r["feed_name"] or r["feed_url"], r["url"]] for r in rows])


@dlq_app.command("show")
def dlq_show(letter_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonOption = False) -> None:
    """One dead letter in full, traceback included."""
    _, conn = _connect()
    with conn:
        row = db.get_dead_letter(conn, letter_id)
    if row is None:
        raise NewsloomError(f"no dead letter {letter_id}")
    if as_json:
        _print_json(row)
        return
    for key in ("id", "task", "url", "url_state", "feed_url", "payload", "error", "attempts",
                "replays", "first_failed_at", "last_failed_at", "resolved_at", "resolution"):
        typer.echo(f"{key + ':':17}{_short(row[key]) if row[key] is not None else '-'}")
    typer.echo(f"traceback:\n{row['traceback'] or '-'}")


@dlq_app.command("replay")
def dlq_replay(
    letter_ids: Annotated[list[int] | None, typer.Argument(metavar="ID...")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every open dead letter.")] = False,
    error: Annotated[str | None, typer.Option(help="With --all: only these errors.")] = None,
    feed: Annotated[str | None, typer.Option(help="With --all: only this feed.")] = None,
) -> None:
    """Send dead letters through the pipeline again; one that succeeds is resolved."""
    if bool(letter_ids) == replay_all:
        raise typer.BadParameter("give dead letter IDs or --all (not both)")
    settings, conn = _connect()
    with conn:
        if replay_all:
            letter_ids = [r["id"] for r in db.list_dead_letters(conn, error=error, feed=feed,
                                                                 limit=1_000_000)]
        replayed = db.replay_dead_letters(conn, letter_ids)
    celery = queue.make_app(settings)
    try:
        # Recorded in Postgres first: a message lost now is resent later.
        for row in _progress(replayed, len(replayed), "replaying"):
            if row["state"] == "fetched":
                queue.enqueue_process(row["url_id"], celery)
            else:
                queue.enqueue_fetch([row["url_id"]], celery)
    finally:
        celery.close()
    typer.echo(f"replaying {len(replayed)} dead letter(s)")


@dlq_app.command("discard")
def dlq_discard(letter_ids: Annotated[list[int], typer.Argument(metavar="ID...")]) -> None:
    """Close dead letters without replaying them."""
    _, conn = _connect()
    with conn:
        count = db.discard_dead_letters(conn, letter_ids)
    typer.echo(f"discarded {count} dead letter(s)")


@app.command()
def status(
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Queue depths, workers alive, URLs by outcome, articles per hour, dead letters and
    failing feeds."""
    settings = _settings()
    _database_url(settings)
    celery = queue.make_app(settings)
    try:
        if as_json:
            _print_json(_status_report(settings, celery))
        elif not watch:
            Console().print(_status_screen(_status_report(settings, celery)))
        else:
            _watch(lambda: _status_screen(_status_report(settings, celery)), interval)
    finally:
        celery.close()


def _progress(items, total: int, label: str):
    """Yield items with a progress bar on a terminal, plain lines every 10% elsewhere."""
    from rich.progress import track

    console = Console(stderr=True)
    if console.is_terminal:
        yield from track(items, total=total, description=label, console=console, transient=True)
        return
    step = max(1, total // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            typer.echo(f"{label}: {done}/{total}", err=True)


def _watch(render, interval: float) -> None:
    """Redraw in place in a terminal; elsewhere (a pipe, a log) print each screen."""
    from rich.live import Live

    console = Console()
    try:
        if console.is_terminal:
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    live.update(render(), refresh=True)
                    time.sleep(interval)
        while True:
            console.print(render())
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _status_report(settings: Settings, celery) -> dict:
    with db.connect(settings.database_url) as conn:
        report = db.status_report(conn)
    report["queues"] = queue.queue_depths(celery)
    report["workers"] = queue.workers_alive(celery)
    return report


def _status_screen(report: dict):
    from rich.console import Group

    articles, feeds = report["articles"], report["feeds"]
    return Group(
        _table(f"newsloom status at {datetime.now():%Y-%m-%d %H:%M:%S}: "
               f"{len(report['workers'])} worker(s) alive",
               ["queue", "waiting"], [[q, n] for q, n in report["queues"].items()]),
        _table(f"articles: {articles['total']} stored, {articles['last_hour']} in the last hour",
               ["hour", "stored"], [[r["hour"].strftime("%H:00"), r["stored"]]
                                    for r in articles["per_hour"]]),
        _table("URLs by outcome", ["outcome", "reason", "total", "last hour"],
               [[r["state"], r["reason"], r["total"], r["last_hour"]] for r in report["outcomes"]]),
        _table("open dead letters", ["error", "count"],
               [[r["error_class"], r["n"]] for r in report["dead_letters"]]),
        _table(f"feeds: {feeds['active']} active, {feeds['failing']} failing",
               ["feed", "errors in a row", "last error", "last success", "next check"],
               [[f["name"] or f["url"], f["consecutive_errors"], (f["last_error"] or "")[:60],
                 f["last_success_at"], f["next_check_at"]] for f in feeds["failing_feeds"]]),
        "workers: " + (", ".join(report["workers"]) or "none answered"),
    )


@app.command()
def reprocess(
    every: Annotated[bool, typer.Option("--all", help="Every article, not only those extracted "
                                                      "by another extractor version.")] = False,
) -> None:
    """Extract and tag stored articles again from their kept pages, without fetching."""
    from newsloom.worker.extract import EXTRACTOR
    from newsloom.worker.pipeline import Context, reprocess_article

    settings = _settings()
    ctx = Context(settings)
    with db.connect(_database_url(settings)) as conn:
        ids = db.articles_to_reprocess(conn, None if every else EXTRACTOR)
    try:
        updated = sum(reprocess_article(ctx, article_id)
                      for article_id in _progress(ids, len(ids), "reprocessing"))
    finally:
        ctx.pool.close()
    typer.echo(f"reprocessed {updated} of {len(ids)} article(s) with {EXTRACTOR}")


@app.command()
def search(words: Annotated[str, typer.Argument(help='Words, "a phrase", -excluded, or.')],
           limit: Annotated[int, typer.Option(min=1, max=1000)] = 10,
           as_json: JsonOption = False) -> None:
    """Full-text search over the collected articles, best matches first."""
    _, conn = _connect()
    with conn:
        rows = db.search_articles(conn, words, limit)
    if as_json:
        _print_json([{**r, "rank": float(r["rank"])} for r in rows])
        return
    if not rows:
        typer.echo("no match")
    for r in rows:
        typer.echo(f"{r['published_at']:%Y-%m-%d}  {r['title'] or '(no title)'}\n"
                   f"    {r['url']}\n    {' '.join(r['snippet'].split())}\n")


@app.command()
def health() -> None:
    """Exit 0 when the broker and the database answer and the schema is current."""
    from newsloom import migrate

    settings = _settings()
    _require_servers(settings)
    problems = []
    try:
        with db.connect(settings.database_url) as conn:
            applied, expected = migrate.applied_version(conn), migrate.latest_version()
            if applied != expected:
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


def main() -> None:
    try:
        app()
    except NewsloomError as exc:
        typer.echo(f"newsloom: error: {exc}", err=True)
        sys.exit(2)
    except (psycopg.OperationalError, kombu.exceptions.OperationalError) as exc:
        typer.echo(f"newsloom: error: cannot reach a server: {exc}", err=True)
        sys.exit(3)
