"""`newsloom dlq`: inspect, replay or discard dead letters."""

from __future__ import annotations

from typing import Annotated

import typer

from newsloom.cli import base, output
from newsloom.cli.base import JsonOption, app
from newsloom.errors import NewsloomError

dlq_app = typer.Typer(no_args_is_help=True, help="Inspect, replay or discard dead letters.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    error: Annotated[str | None, typer.Option(help="Error class, or text in the message.")] = None,
    feed: Annotated[str | None, typer.Option(help="Feed URL, name or id.")] = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead letters, newest first."""
    from newsloom import db

    _, conn = base.connect()
    with conn:
        rows = db.list_dead_letters(
            conn, error=error, feed=feed, include_resolved=include_resolved, limit=limit
        )
    if as_json:
        output.print_json(rows)
        return
    output.print_table(
        f"{len(rows)} dead letter(s)",
        ["id", "last failed", "task", "error", "attempts", "replays", "feed", "url"],
        [
            [
                r["id"],
                r["last_failed_at"],
                r["task"],
                r["error"][:80],
                r["attempts"],
                r["replays"],
                r["feed_name"] or r["feed_url"],
                r["url"],
            ]
            for r in rows
        ],
    )


@dlq_app.command("show")
def dlq_show(
    letter_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    """One dead letter in full, traceback included."""
    from newsloom import db

    _, conn = base.connect()
    with conn:
        row = db.get_dead_letter(conn, letter_id)
    if row is None:
        raise NewsloomError(f"no dead letter {letter_id}")
    if as_json:
        output.print_json(row)
        return
    for key in (
        "id",
        "task",
        "url",
        "url_state",
        "feed_url",
        "payload",
        "error",
        "attempts",
        "replays",
        "first_failed_at",
        "last_failed_at",
        "resolved_at",
        "resolution",
    ):
        typer.echo(f"{key + ':':17}{output.short(row[key]) if row[key] is not None else '-'}")
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
    from newsloom import db, queue

    settings, conn = base.connect()
    with conn:
        if replay_all:
            letter_ids = [
                r["id"] for r in db.list_dead_letters(conn, error=error, feed=feed, limit=1_000_000)
            ]
        replayed = db.replay_dead_letters(conn, letter_ids or [])
    celery = queue.make_app(settings)
    try:
        # Recorded in Postgres first: a message lost now is resent later.
        for row in output.progress(replayed, len(replayed), "replaying"):
            if row["state"] == "deliver":
                continue  # the dispatcher sends marked deliveries with the endpoint's next
            queue.enqueue_in_flight(row["url_id"], row["state"], celery)
    finally:
        celery.close()
    typer.echo(f"replaying {len(replayed)} dead letter(s)")


@dlq_app.command("discard")
def dlq_discard(letter_ids: Annotated[list[int], typer.Argument(metavar="ID...")]) -> None:
    """Close dead letters without replaying them."""
    from newsloom import db

    _, conn = base.connect()
    with conn:
        count = db.discard_dead_letters(conn, letter_ids)
    typer.echo(f"discarded {count} dead letter(s)")
