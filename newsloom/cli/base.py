"""What every command shares: the Typer app, settings and database connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from newsloom.errors import SettingsError

if TYPE_CHECKING:
    from newsloom import db
    from newsloom.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Collect news articles from RSS/Atom feeds into Postgres.")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _print_version(wanted: bool) -> None:
    if wanted:
        from newsloom import __version__

        typer.echo(f"newsloom {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Options before any command."""


def settings_for_command() -> Settings:
    # Imported here and in each command (not at the top): `newsloom --help` and commands
    # that need neither Celery nor spaCy start in a fraction of a second.
    from newsloom import log
    from newsloom.settings import get_settings

    settings = get_settings()
    log.configure(settings)
    return settings


def database_url(settings: Settings) -> str:
    return settings.require_database_url()


def require_servers(settings: Settings) -> None:
    if settings.embedded:
        raise SettingsError("DATABASE_URL and REDIS_URL must be set (only `newsloom up` "
                            "starts embedded servers)")


def connect() -> tuple[Settings, db.Connection]:
    from newsloom import db

    settings = settings_for_command()
    return settings, db.connect(database_url(settings))
