"""Drawing: tables, JSON, progress bars and redrawn screens. No logic of its own.

rich is imported where it draws for a terminal, so commands whose output goes to a pipe or
a file, or that print plain text, start without it (its import is a tenth of a start-up).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Group, RenderableType

T = TypeVar("T")


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=json_default))


def json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table(title: str, columns: list[str], rows: list[list[object]]) -> Group:
    """A titled table; the title on its own line, so a narrow table does not wrap it."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else short(v) for v in row))
    return Group(Text(title, style="bold"), table)


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    """A table on a terminal; elsewhere the title, then tab-separated lines (the header, a
    line per row) that cut and awk read, a row never folded over lines."""
    if _terminal(sys.stdout):
        from rich.console import Console

        Console().print(table(title, columns, rows))
        return
    typer.echo(title)
    typer.echo("\t".join(columns))
    for row in rows:
        typer.echo("\t".join(" ".join(short(v).split()) if v is not None else "" for v in row))


def short(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _terminal(stream: TextIO) -> bool:
    """Whether rich draws for a terminal on `stream`. rich is asked (and imported) only for
    a terminal, or when TTY_COMPATIBLE or FORCE_COLOR may make it draw for one anyway."""
    if not (stream.isatty() or "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ):
        return False
    from rich.console import Console

    return Console(file=stream).is_terminal


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """Yield items with a progress bar on a terminal, plain lines every 10% elsewhere."""
    if _terminal(sys.stderr):
        from rich.console import Console
        from rich.progress import track

        console = Console(stderr=True)
        yield from track(items, total=total, description=label, console=console, transient=True)
        return
    step = max(1, total // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            typer.echo(f"{label}: {done}/{total}", err=True)


def watch(render: Callable[[], RenderableType], interval: float) -> None:
    """Redraw in place in a terminal; elsewhere (a pipe, a log) print each screen. Until
    Ctrl-C or SIGTERM, which only set a flag: a screen being drawn (a query, a worker ping
    inside Celery) is finished rather than broken off in library code that may swallow
    the KeyboardInterrupt and go on."""
    from rich.console import Console
    from rich.live import Live

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    console = Console()
    try:
        if console.is_terminal:
            with Live(console=console, auto_refresh=False) as live:
                while not stop.is_set():
                    live.update(render(), refresh=True)
                    stop.wait(interval)
        while not stop.is_set():
            console.print(render())
            stop.wait(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def status_screen(report: dict[str, Any]) -> Group:
    from rich.console import Group

    articles, feeds = report["articles"], report["feeds"]
    return Group(
        table(
            f"newsloom status at {datetime.now():%Y-%m-%d %H:%M:%S}: "
            f"{len(report['workers'])} worker(s) alive",
            ["queue", "waiting"],
            [[q, n] for q, n in report["queues"].items()],
        ),
        table(
            f"articles: {articles['total']} stored, {articles['last_hour']} in the last hour",
            ["hour", "stored"],
            [[r["hour"].strftime("%H:00"), r["stored"]] for r in articles["per_hour"]],
        ),
        table(
            "URLs by outcome",
            ["outcome", "reason", "total", "last hour"],
            [[r["state"], r["reason"], r["total"], r["last_hour"]] for r in report["outcomes"]],
        ),
        table(
            "open dead letters",
            ["error", "count"],
            [[r["error_class"], r["n"]] for r in report["dead_letters"]],
        ),
        table(
            f"feeds: {feeds['active']} active, {feeds['failing']} failing",
            ["feed", "errors in a row", "last error", "last success", "next check"],
            [
                [
                    f["name"] or f["url"],
                    f["consecutive_errors"],
                    (f["last_error"] or "")[:60],
                    f["last_success_at"],
                    f["next_check_at"],
                ]
                for f in feeds["failing_feeds"]
            ],
        ),
        webhooks_table(report["webhooks"]),
        "workers: " + (", ".join(report["workers"]) or "none answered"),
    )


def webhooks_table(webhooks: list[dict[str, Any]]) -> Group:
    disabled = sum(1 for w in webhooks if w["disabled_at"])
    return table(
        f"webhooks: {len(webhooks)} listed, {disabled} disabled",
        ["endpoint", "state", "delivered", "events behind", "dead letters", "last error"],
        [
            [
                w["url"],
                _webhook_state(w),
                w["delivered"],
                w["behind"],
                w["dead_letters"],
                (w["last_error"] or "")[:60],
            ]
            for w in webhooks
        ],
    )


def _webhook_state(webhook: dict) -> str:
    if webhook["disabled_at"]:
        return f"DISABLED: {webhook['disabled_reason']}"
    if webhook["attempts"]:
        return (
            f"retrying (attempt {webhook['attempts'] + 1} at {short(webhook['next_attempt_at'])})"
        )
    return "ok"


@contextmanager
def read_progress(
    label: str, total_bytes: int | None, every: float = 10.0
) -> Iterator[Callable[[int, int, int], None]]:
    """Progress of a long read (`newsloom import`): a bar with records/s and the time left
    on a terminal, a plain line every `every` seconds elsewhere. Yields
    update(bytes_done, records, sent): totals so far, bytes over all files."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    started = time.monotonic()

    def rate(records: int) -> float:
        return records / max(time.monotonic() - started, 1e-6)

    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn(
                "{task.fields[records]} records, {task.fields[rate]}/s, {task.fields[sent]} sent"
            ),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(label, total=total_bytes, records=0, rate="0", sent=0)

            def redraw(done: int, records: int, sent: int) -> None:
                bar.update(
                    task, completed=done, records=records, rate=f"{rate(records):.0f}", sent=sent
                )

            yield redraw
        return
    shown_at, shown, latest = time.monotonic(), (0, 0, 0), (0, 0, 0)

    def show(done: int, records: int, sent: int) -> None:
        nonlocal shown_at, shown
        shown_at, shown = time.monotonic(), (done, records, sent)
        share = f", {100 * done / total_bytes:.0f}% of bytes" if total_bytes else ""
        eta = ""
        if total_bytes and 0 < done < total_bytes:
            eta = f", about {(time.monotonic() - started) * (total_bytes - done) / done:.0f}s left"
        typer.echo(
            f"{label}: {records} records ({rate(records):.0f}/s), {sent} sent{share}{eta}", err=True
        )

    def log_line(done: int, records: int, sent: int) -> None:
        nonlocal latest
        latest = (done, records, sent)
        if time.monotonic() - shown_at >= every:
            show(done, records, sent)

    yield log_line
    if latest != shown:
        show(*latest)  # the totals at the end
