"""Reading the collection: status, search, reprocess."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from newsloom.cli import base, output
from newsloom.cli.base import JsonOption, app

if TYPE_CHECKING:
    from celery import Celery

    from newsloom.settings import Settings


@app.command()
def status(
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Queue depths, workers alive, URLs by outcome, articles per hour, dead letters and
    failing feeds."""
    from rich.console import Console

    from newsloom import queue

    settings = base.settings_for_command()
    base.database_url(settings)
    celery = queue.make_app(settings)
    try:
        if as_json:
            output.print_json(_status_report(settings, celery))
        elif not watch:
            Console().print(output.status_screen(_status_report(settings, celery)))
        else:
            output.watch(lambda: output.status_screen(_status_report(settings, celery)), interval)
    finally:
        celery.close()


def _status_report(settings: Settings, celery: Celery) -> dict[str, Any]:
    from newsloom import db, queue

    with db.connect(settings.require_database_url()) as conn:
        report = db.status_report(conn)
        report["webhooks"] = db.webhook_status(conn)
    report["queues"] = queue.queue_depths(celery)
    report["workers"] = queue.workers_alive(celery)
    return report


@app.command()
def reprocess(
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Every article, not only those extracted by another extractor version."
        ),
    ] = False,
) -> None:
    """Extract and tag stored articles again from their kept pages, without fetching."""
    from newsloom import db
    from newsloom.worker.extract import EXTRACTOR
    from newsloom.worker.pipeline import Context, reprocess_article

    settings = base.settings_for_command()
    ctx = Context(settings)
    with db.connect(base.database_url(settings)) as conn:
        ids = db.articles_to_reprocess(conn, None if every else EXTRACTOR)
        without_page = db.articles_without_kept_page(conn, None if every else EXTRACTOR)
    try:
        updated = sum(
            reprocess_article(ctx, article_id)
            for article_id in output.progress(ids, len(ids), "reprocessing")
        )
    finally:
        ctx.pool.close()
    typer.echo(f"reprocessed {updated} of {len(ids)} article(s) with {EXTRACTOR}")
    if without_page:
        typer.echo(
            f"{without_page} article(s) cannot be reprocessed: their kept page was "
            "pruned (NEWSLOOM_RAW_PAGES_KEEP)"
        )


@app.command()
def search(
    words: Annotated[str, typer.Argument(help='Words, "a phrase", -excluded, or.')],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    as_json: JsonOption = False,
) -> None:
    """Full-text search over the collected articles, best matches first."""
    from newsloom import db

    _, conn = base.connect()
    with conn:
        rows = db.search_articles(conn, words, limit)
    if as_json:
        output.print_json([{**r, "rank": float(r["rank"])} for r in rows])
        return
    if not rows:
        typer.echo("no match")
    for r in rows:
        typer.echo(
            f"{r['published_at']:%Y-%m-%d}  {r['title'] or '(no title)'}\n"
            f"    {r['url']}\n    {' '.join(r['snippet'].split())}\n"
        )
