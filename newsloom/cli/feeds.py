"""`newsloom feeds`: list, check and add feeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsloom.cli import base, output
from newsloom.cli.base import JsonOption, app

feeds_app = typer.Typer(no_args_is_help=True, help="List, check and add feeds.")
app.add_typer(feeds_app, name="feeds")


@feeds_app.command("list")
def feeds_list(
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=0, help="Show the first N feeds (0: all).")] = 100,
) -> None:
    """The feeds and their health, from the database."""
    from newsloom import db

    _, conn = base.connect()
    with conn:
        # One more than shown: whether there are more is known without counting them all.
        rows = db.list_feeds(conn, limit + 1 if limit else None)
    more = bool(limit) and len(rows) > limit
    rows = rows[:limit] if limit else rows
    if as_json:
        output.print_json(rows)
        return
    title = f"{len(rows)} feed(s)" + (f", more not shown (--limit {limit})" if more else "")
    output.print_table(
        title,
        [
            "feed",
            "kind",
            "active",
            "last success",
            "last error",
            "errors in a row",
            "next check",
            "polled every",
            "items seen",
            "left out",
        ],
        [
            [
                r["name"] or r["url"],
                r["kind"] or r["source_type"] or "",
                "yes" if r["active"] else "no",
                r["last_success_at"],
                (r["last_error"] or "")[:60],
                r["consecutive_errors"],
                r["next_check_at"],
                f"{r['poll_every_seconds'] or r['interval_seconds']:.0f}s",
                r["items_seen"],
                (r["last_poll_note"] or "")[:60],
            ]
            for r in rows
        ],
    )


@feeds_app.command("check")
def feeds_check(
    path: Annotated[Path, typer.Argument(metavar="FILE")], as_json: JsonOption = False
) -> None:
    """Validate a feeds file and probe each feed; exit 1 if any feed fails."""
    from concurrent.futures import ThreadPoolExecutor

    from newsloom import web
    from newsloom.scheduler.feedsfile import FeedConfig, load_feeds, load_webhooks
    from newsloom.scheduler.poll import make_rules, poll_feed

    settings = base.settings_for_command()
    feeds = load_feeds(path, settings.default_interval)
    load_webhooks(path)  # its [[webhook]] tables must be valid too

    def probe(feed: FeedConfig) -> dict[str, object]:
        try:
            result = poll_feed(
                client,
                feed.url,
                settings,
                rules=make_rules(feed.type, feed.include, feed.exclude, feed.since),
            )
        except Exception as exc:  # noqa: BLE001 - each feed's problem is reported, not raised
            return {
                "url": feed.url,
                "ok": False,
                "kind": feed.type,
                "entries": None,
                "error": f"{type(exc).__name__}: {exc}",
            }
        problems = (
            [f"{result.rejected_links} entries without a usable link"]
            if result.rejected_links
            else []
        )
        return {
            "url": feed.url,
            "ok": True,
            "kind": result.kind,
            "entries": len(result.entries),
            "error": "; ".join(problems + ([f"left out: {result.note}"] if result.note else []))
            or None,
        }

    with web.make_client(settings) as client, ThreadPoolExecutor(settings.poll_concurrency) as pool:
        results = list(output.progress(pool.map(probe, feeds), len(feeds), "probing"))
    if as_json:
        output.print_json(results)
    else:
        output.print_table(
            f"{path}: {len(feeds)} feed(s), {sum(not r['ok'] for r in results)} failing",
            ["feed", "kind", "ok", "entries", "problem"],
            [
                [r["url"], r["kind"] or "", "yes" if r["ok"] else "NO", r["entries"], r["error"]]
                for r in results
            ],
        )
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="A feed's URL or a site's home page.")],
    name: Annotated[str | None, typer.Option(help="Name to list it under.")] = None,
) -> None:
    """Find a site's feed and add it to the feeds file (NEWSLOOM_FEEDS)."""
    from newsloom import web
    from newsloom.scheduler.discover import discover_feed, discover_sitemaps
    from newsloom.scheduler.feedsfile import append_feed

    settings = base.settings_for_command()
    if "://" not in url:
        url = "https://" + url
    with web.make_client(settings) as client:
        feed_url, title = discover_feed(client, url, settings)
        sitemaps = [s for s in discover_sitemaps(client, url, settings) if s != feed_url]
    append_feed(settings.feeds, feed_url, name or title)
    typer.echo(
        f"added {feed_url}"
        + (f" ({name or title})" if name or title else "")
        + f" to {settings.feeds}"
    )
    if sitemaps:
        typer.echo(
            "the site's sitemaps (add one with `newsloom feeds add URL`):\n  "
            + "\n  ".join(sitemaps)
        )
