"""`newsloom export`: stream articles to JSONL, CSV, Parquet or WARC, resumable by name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from newsloom import export
from newsloom.cli import base, output
from newsloom.cli.base import app

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def _check_format(value: str) -> str:
    if value not in export.WRITERS:
        raise typer.BadParameter(f"choose from {', '.join(export.WRITERS)} (got {value!r})")
    return value


def _utc(value: datetime | None) -> datetime | None:
    """Dates without a zone are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@app.command("export")
def export_command(
    fmt: Annotated[
        str, typer.Option("--format", callback=_check_format, help="jsonl, csv, parquet or warc.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="File to write (appears whole when done); standard output if unset."
        ),
    ] = None,
    since_id: Annotated[
        int | None, typer.Option("--since-id", min=0, help="Only articles with a greater id.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=DATE_FORMATS, help="Published (else fetched) at or after, UTC unless given."
        ),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=DATE_FORMATS, help="Published (else fetched) before.")
    ] = None,
    feed: Annotated[str | None, typer.Option(help="Feed URL, name or id.")] = None,
    language: Annotated[str | None, typer.Option(help="Language code, e.g. en.")] = None,
    entity: Annotated[str | None, typer.Option(help="Articles naming this entity.")] = None,
    cursor: Annotated[
        str | None,
        typer.Option(
            help="Resume after the last article the export of this name wrote, and remember "
            "where this one stops."
        ),
    ] = None,
) -> None:
    """Stream articles, oldest id first, in constant memory. The JSONL lines are the
    documents webhooks deliver (schema newsloom.article/1); WARC holds each kept page as a
    response record and each article's fields as a metadata record."""
    if since_id is not None and since is not None:
        raise typer.BadParameter("give --since-id or --since, not both")
    from newsloom import db

    _, conn = base.connect()
    with conn:
        if cursor is not None:
            resume_after = db.export_cursor(conn, cursor)
            if resume_after is not None:
                since_id = max(since_id or 0, resume_after)
        selection = db.ArticleFilter(
            since_id=since_id,
            since=_utc(since),
            until=_utc(until),
            feed=feed,
            language=language,
            entity=entity,
        )
        with export.output_stream(out) as stream:
            total = db.count_articles(conn, selection)
            read = (
                db.articles_with_pages if fmt in export.WITH_PAGES else db.stream_article_documents
            )
            rows = output.progress(read(conn, selection), total, "exporting")
            result = export.write_rows(rows, export.WRITERS[fmt](stream))
        if cursor is not None and result.last_article_id is not None:
            db.save_export_cursor(conn, cursor, result.last_article_id)
    typer.echo(
        f"exported {result.articles} article(s)"
        + (f" to {out}" if out else "")
        + (
            f"; cursor {cursor!r} at article {result.last_article_id}"
            if cursor and result.last_article_id
            else ""
        ),
        err=True,
    )
