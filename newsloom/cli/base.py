"""What every command shares: the Typer app, settings and database connections."""

from __future__ import annotations

from typing import Annotated

import typer

from newsloom import db, log
from newsloom.errors import SettingsError
from newsloom.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Collect news articles from RSS/Atom feeds into Postgres.")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def settings_for_command() -> Settings:
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
    settings = settings_for_command()
    return settings, db.connect(database_url(settings))
