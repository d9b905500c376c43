"""`newsloom serve`: the read API and the web page."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from newsloom.cli import base
from newsloom.cli.base import app


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides NEWSLOOM_HTTP_HOST.")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Overrides NEWSLOOM_HTTP_PORT.")
    ] = None,
) -> None:
    """The read API under /api/v1 and the web page at /, on NEWSLOOM_HTTP_HOST:PORT."""
    import uvicorn

    from newsloom.api import create_app
    from newsloom.api.auth import check_listen_address, session_secret

    settings = base.settings_for_command()
    overrides = {k: v for k, v in (("http_host", host), ("http_port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    check_listen_address(settings)
    url = base.database_url(settings)
    if settings.http_workers > 1:
        # Several processes each build the app from the environment: give them the database
        # found here (the embedded one when DATABASE_URL is unset) and one session secret,
        # so that a cursor or a session cookie made by one is good in the others.
        os.environ["DATABASE_URL"] = url
        os.environ["NEWSLOOM_SESSION_SECRET"] = session_secret(settings)
    application = (
        "newsloom.api.app:from_environment" if settings.http_workers > 1 else create_app(settings)
    )
    uvicorn.run(
        application,
        factory=settings.http_workers > 1,
        workers=settings.http_workers,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        server_header=False,
        proxy_headers=False,
    )
