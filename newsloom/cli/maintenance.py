"""`newsloom prune`: retention of kept pages and finished ledger rows."""

from __future__ import annotations

from typing import Annotated

import typer

from newsloom.cli import base, output
from newsloom.cli.base import JsonOption, app


@app.command()
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; remove nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove kept pages and finished ledger rows older than NEWSLOOM_RAW_PAGES_KEEP /
    NEWSLOOM_URLS_KEEP, in small batches; the scheduler does it once a day."""
    from newsloom import db, retention

    settings, conn = base.connect()
    keeps = {"raw_pages_keep": settings.raw_pages_keep, "urls_keep": settings.urls_keep}
    with conn:
        if dry_run:
            report: dict = {
                "dry_run": True,
                **keeps,
                **db.count_prunable(conn, settings.raw_pages_keep, settings.urls_keep),
            }
        else:
            result = retention.prune(conn, settings)
            if not result.ran:
                typer.echo("newsloom: another prune is running; nothing done", err=True)
                raise typer.Exit(1)
            report = {
                "dry_run": False,
                **keeps,
                "raw_pages": result.raw_pages,
                "raw_page_bytes": result.raw_page_bytes,
                "urls": result.urls,
                "seconds": round(result.seconds, 3),
            }
    if as_json:
        output.print_json(report)
        return
    if settings.raw_pages_keep is None and settings.urls_keep is None:
        typer.echo("NEWSLOOM_RAW_PAGES_KEEP and NEWSLOOM_URLS_KEEP are unset: everything is kept")
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report['raw_pages']} kept page(s) and {report['urls']} ledger row(s) "
        f"({report['raw_page_bytes'] / 2**20:.1f} MB of compressed pages)"
    )
