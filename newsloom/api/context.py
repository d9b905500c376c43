"""What every request handler shares: settings, the read pool, keys, cursors, templates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from newsloom import db
from newsloom.api.auth import Keys
from newsloom.api.cursors import Cursors
from newsloom.api.queries import Recent
from newsloom.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ServerContext:
    settings: Settings
    pool: db.Pool
    keys: Keys
    cursors: Cursors
    templates: Jinja2Templates
    # Aggregations of the default period, computed at most once a minute.
    recent: Recent
    # The home page without parameters, rendered at most once a second.
    latest_page: Recent

    @contextmanager
    def connection(self) -> Iterator[db.Connection]:
        with self.pool.connection() as conn:
            yield conn


def context_of(request: Request) -> ServerContext:
    return request.app.state.context
