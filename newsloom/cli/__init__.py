"""The `newsloom` command line: one module per command group, drawing in `output`."""

from __future__ import annotations

import sys
import traceback

import kombu.exceptions
import psycopg
import redis
import typer

from newsloom.cli import collection, dlq, feeds, pipeline  # noqa: F401 - they register commands
from newsloom.cli.base import app
from newsloom.errors import NewsloomError
from newsloom.settings import debug_requested

__all__ = ["app", "main"]
_UNREACHABLE = (psycopg.OperationalError, kombu.exceptions.OperationalError,
                redis.exceptions.ConnectionError)


def main() -> None:
    """Expected errors end in one line (exit 2, or 3 for a server that cannot be reached);
    the traceback too only with NEWSLOOM_LOG_LEVEL=debug."""
    try:
        app()
    except NewsloomError as exc:
        _fail(str(exc), exc.exit_code)
    except _UNREACHABLE as exc:
        first_line = (str(exc).strip().splitlines() or [repr(exc)])[0]
        _fail(f"cannot reach a server: {first_line}", 3)


def _fail(message: str, code: int) -> None:
    if debug_requested():
        traceback.print_exc()
    typer.echo(f"newsloom: error: {message}", err=True)
    sys.exit(code)
