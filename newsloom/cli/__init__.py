"""The `newsloom` command line: one module per command group, drawing in `output`."""

from __future__ import annotations

import sys

import kombu.exceptions
import psycopg
import typer

from newsloom.cli import collection, dlq, feeds, pipeline  # noqa: F401 - they register commands
from newsloom.cli import maintenance  # noqa: F401 - registers prune
from newsloom.cli.base import app
from newsloom.errors import NewsloomError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except NewsloomError as exc:
        typer.echo(f"newsloom: error: {exc}", err=True)
        sys.exit(2)
    except (psycopg.OperationalError, kombu.exceptions.OperationalError) as exc:
        typer.echo(f"newsloom: error: cannot reach a server: {exc}", err=True)
        sys.exit(3)
