"""What every command shares: the Typer app, settings and database connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from newsloom.errors import SettingsError

if TYPE_CHECKING:
    from newsloom import db
    from newsloom.settings import Settings

# No Rich tracebacks: expected errors are one line (newsloom.cli.main), others plain.
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Collect news articles from feeds, sitemaps and pages into Postgres.",
)
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _print_version(wanted: bool) -> None:
    if wanted:
        from newsloom import __version__

        typer.echo(f"newsloom {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options before any command."""


def settings_for_command(find_embedded: bool = True) -> Settings:
    """The settings; with DATABASE_URL and REDIS_URL unset, those of the embedded servers
    that `newsloom up` runs for this NEWSLOOM_DATA_DIR, if it does."""
    # Imported here and in each command (not at the top): `newsloom --help` and commands
    # that need neither Celery nor spaCy start in a fraction of a second.
    from newsloom import log
    from newsloom.settings import get_settings

    settings = get_settings()
    log.configure(settings)
    if find_embedded and settings.database_url is None and settings.redis_url is None:
        from newsloom.embedded import running_servers

        found = running_servers(settings.data_dir)
        if found is not None:
            settings = settings.model_copy(
                update={"database_url": found.database_url, "redis_url": found.redis_url}
            )
    return settings


def _not_set(settings: Settings) -> str:
    missing = " and ".join(
        name
        for name, value in (
            ("DATABASE_URL", settings.database_url),
            ("REDIS_URL", settings.redis_url),
        )
        if value is None
    )
    return (
        f"{missing} not set, and no `newsloom up` runs embedded servers for "
        f"NEWSLOOM_DATA_DIR={settings.data_dir}: start `make run` (or `newsloom up`) "
        f"in this directory, or set {missing}"
    )


def database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise SettingsError(_not_set(settings))
    return settings.database_url


def require_servers(settings: Settings) -> None:
    if settings.embedded:
        raise SettingsError(_not_set(settings))


def connect() -> tuple[Settings, db.Connection]:
    from newsloom import db

    settings = settings_for_command()
    return settings, db.connect(database_url(settings))
