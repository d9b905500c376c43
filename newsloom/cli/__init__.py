"""The `newsloom` command line: one module per command group, drawing in `output`."""

from __future__ import annotations

import sys

import typer

from newsloom.cli import collection, dlq, feeds, pipeline  # noqa: F401 - they register commands
from newsloom.cli import serve  # noqa: F401 - registers `serve`

from newsloom.cli import export  # noqa: F401 - registers `export`
from newsloom.cli.base import app
from newsloom.errors import NewsloomError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except NewsloomError as exc:
        typer.echo(f"newsloom: error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        if not _server_unreachable(exc):
            raise
        typer.echo(f"newsloom: error: cannot reach a server: {exc}", err=True)
        sys.exit(3)


def _server_unreachable(exc: Exception) -> bool:
    """A connection error of Postgres or of the broker. Their libraries are imported by the
    commands that use them (start-up time): one not imported cannot have raised."""
    errors = [getattr(sys.modules.get(module), "OperationalError", None)
              for module in ("psycopg", "kombu.exceptions")]
    return any(isinstance(exc, error) for error in errors if error is not None)
