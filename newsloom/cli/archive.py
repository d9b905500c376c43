"""Archives: import WARC/ARC files through the process step (`export --format warc` writes
them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from newsloom.cli import base, output
from newsloom.cli.base import JsonOption, app

SinceOption = Annotated[
    str | None,
    typer.Option(
        help="Only articles dated from this day or time on (YYYY-MM-DD or ISO 8601, UTC)."
    ),
]


def parse_date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _names(values: list[str], option: str) -> frozenset[str]:
    """Comma-separated values; `@FILE` reads one per line (# starts a comment)."""
    names: set[str] = set()
    for value in values:
        if value.startswith("@"):
            try:
                lines = Path(value[1:]).read_text().splitlines()
            except OSError as exc:
                raise typer.BadParameter(
                    f"cannot read {value[1:]}: {exc.strerror}", param_hint=option
                ) from None
            names.update(line.split("#")[0].strip() for line in lines)
        else:
            names.update(part.strip() for part in value.split(","))
    return frozenset(name.lower().rstrip(".") for name in names if name)


@app.command("import")
def import_archives(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="WARC/ARC files (.warc, .arc, gzipped or not), directories of them, or "
            "http(s) URLs of them."
        ),
    ],
    since: SinceOption = None,
    until: Annotated[
        str | None, typer.Option(help="Only articles dated before this day or time.")
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            help="Only pages of these sites and their subdomains: comma-separated, or @FILE "
            "with one per line; may be repeated."
        ),
    ] = None,
    language: Annotated[
        list[str] | None,
        typer.Option(help="Only articles in these languages (ISO 639-1, comma-separated)."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Send at most this many pages to processing in this run."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import web archives: each HTML page goes through the process step (extract, dedupe,
    tag, store) on the workers. Resumable: a file imported before is skipped, one stopped
    part way goes on where it stopped."""
    from newsloom import db, queue, web
    from newsloom.importer import Filters, Importer, Progress, expand_sources

    settings = base.settings_for_command()
    base.require_servers(settings)
    filters = Filters(
        since=parse_date(since, "--since"),
        until=parse_date(until, "--until"),
        domains=_names(domain or [], "--domain"),
        languages=_names(language or [], "--language"),
    )
    client = web.make_client(settings)
    celery = queue.make_app(settings)
    try:
        files = expand_sources(sources, settings, client)
        sizes = [f.size for f in files]
        total = None if None in sizes else sum(s or 0 for s in sizes)
        bytes_read: dict[str, int] = {}
        with (
            db.connect(base.database_url(settings)) as conn,
            output.read_progress("importing", total) as draw,
        ):

            def on_progress(progress: Progress) -> None:
                bytes_read[progress.location] = progress.byte_offset
                draw(sum(bytes_read.values()), progress.records_read, progress.sent)

            importer = Importer(settings, conn, celery, filters, limit, on_progress)
            results = importer.run(files)
    finally:
        celery.close()
        client.close()
    if as_json:
        output.print_json([vars(r) for r in results])
        return
    output.print_table(
        "imported files",
        ["file", "records", "sent", "skipped", "state"],
        [
            [
                r.location,
                r.records_read,
                r.counts.get("queued", 0),
                _skipped(r.counts),
                "imported before" if r.already_done else "done" if r.done else "stopped (--limit)",
            ]
            for r in results
        ],
    )
    typer.echo(
        f"{importer.sent} page(s) sent to the process queue: the workers store them "
        "(see `newsloom status`)"
    )


def _skipped(counts: dict[str, int]) -> str:
    skipped = sorted(
        ((n, reason) for reason, n in counts.items() if reason != "queued"), reverse=True
    )
    return ", ".join(f"{reason} {n}" for n, reason in skipped)


@app.command("imports")
def imports(as_json: JsonOption = False) -> None:
    """Imported files: how far each got and what became of its records."""
    from newsloom import db

    _, conn = base.connect()
    with conn:
        rows = db.list_imports(conn)
    if as_json:
        output.print_json(rows)
        return
    output.print_table(
        "imports",
        ["file", "records", "offset", "sent", "skipped", "done", "updated"],
        [
            [
                r["location"],
                r["records_read"],
                r["byte_offset"],
                r["counts"].get("queued", 0),
                _skipped(r["counts"]),
                r["done"],
                r["updated_at"],
            ]
            for r in rows
        ],
    )
