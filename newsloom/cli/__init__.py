"""The `newsloom` command line: one module per command group, drawing in `output`."""

from __future__ import annotations

import sys
import traceback

import typer

from newsloom.cli import (  # noqa: F401 - they register commands
    archive,
    collection,
    dlq,
    export,
    feeds,
    maintenance,
    pipeline,
    serve,
)
from newsloom.cli.base import app
from newsloom.errors import NewsloomError

__all__ = ["app", "main"]


def main() -> None:
    """Expected errors end in one line (exit 2, or 3 for a server that cannot be reached);
    the traceback too only with NEWSLOOM_LOG_LEVEL=debug."""
    # httpx imports its own command-line client (click, rich and pygments: a fifth of the
    # start-up of `feeds check`) whenever they are installed, as Celery and typer install
    # them; newsloom never runs it. None in sys.modules fails that import, which httpx allows.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        app()
    except NewsloomError as exc:
        _fail(str(exc), exc.exit_code)
    except Exception as exc:
        if not _server_unreachable(exc):
            raise
        first_line = (str(exc).strip().splitlines() or [repr(exc)])[0]
        _fail(f"cannot reach a server: {first_line}", 3)


def _server_unreachable(exc: Exception) -> bool:
    """A connection error of Postgres, of the broker or of Redis. Their libraries are
    imported by the commands that use them (start-up time): one not imported cannot have
    raised."""
    errors = [
        getattr(sys.modules.get(module), name, None)
        for module, name in (
            ("psycopg", "OperationalError"),
            ("kombu.exceptions", "OperationalError"),
            ("redis.exceptions", "ConnectionError"),
        )
    ]
    return any(isinstance(exc, error) for error in errors if error is not None)


def _fail(message: str, code: int) -> None:
    from newsloom.settings import debug_requested

    if debug_requested():
        traceback.print_exc()
    typer.echo(f"newsloom: error: {message}", err=True)
    sys.exit(code)
